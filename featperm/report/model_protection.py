"""Render a model-protection run (``results.json`` of
:func:`featperm.experiments.model_protection.run_model_protection`) as ``results.md`` (the paper's
Tables I-III for one model) and ``accuracy_vs_budget.png`` (test accuracy each attack restores
against the labelled images it used), every number from the file."""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, List, Optional

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

__all__ = ["markdown", "render_model_protection", "summary_lines"]


def _pct(x: Optional[float]) -> str:
    return "–" if x is None else f"{x:.1f}%"


def markdown(results: Dict[str, Any]) -> str:
    """The Markdown report of one run."""
    acc, model, data, run = results["accuracy"], results["model"], results["data"], results["run"]
    est = results["key_estimation"]
    lines: List[str] = [
        "# Block-wise feature-map protection (AprilPyone & Kiya 2021): accuracy and attacks",
        "",
        f"Data: {data['name']} ({data['train']} training, {data['test']} test images, {data['classes']} classes). "
        f"Model: {model['architecture']}, width {model['width']}, shuffle after {model['at']} with M = "
        f"{model['block_size']} ({results['key_positions']} key positions; key space (C·M·M)! = "
        f"10^{results['key_space_log10']:.0f}). Recipe: {run['preset']} ({run['train']['epochs']} epochs). "
        f"featperm {run['featperm']}, torch {run['torch']}, {run['device']}, seed {run['seed']}, "
        f"{run['seconds']:.0f} s.",
        "",
        "## Table I: test accuracy",
        "",
        "| model | accuracy |",
        "|---|---:|",
        f"| baseline (unprotected, same recipe) | {_pct(acc['baseline'])} |",
        f"| protected, correct key K | {_pct(acc['correct_key'])} |",
        f"| protected, wrong keys K′ (mean over {acc['wrong_keys']}; max; std) | {_pct(acc['wrong_keys_mean'])} "
        f"(max {_pct(acc['wrong_keys_max'])}, std {acc['wrong_keys_std']:.1f}) |",
        f"| protected, without the transform | {_pct(acc['no_transform'])} |",
        f"| chance | {_pct(acc['chance'])} |",
        "",
        "## Table II: key estimation (no key; the thief's labelled attack images)",
        "",
        "| attack | test accuracy | key positions recovered | budget |",
        "|---|---:|---:|---|",
        f"| starting key (random) | {_pct(est['initial_key_accuracy'])} | – | – |",
        f"| greedy pairwise swaps (Algorithm 1) | {_pct(est['accuracy'])} | {_pct(est['positions_recovered'])} "
        f"| {est['attack_images']} labelled images, {est['rounds']} round(s), {est['candidates_evaluated']} "
        f"candidate keys, {est['seconds']:.0f} s |",
        f"| best of {est['random_key_search']['keys']} random keys | {_pct(est['random_key_search']['accuracy'])} "
        f"| {_pct(est['random_key_search']['positions_recovered'])} | the same images |",
        "",
        "## Table III: fine-tuning the stolen model without its key",
        "",
        "| labelled images \\|D′\\| | stolen model, fine-tuned | trained from scratch on the same images |",
        "|---:|---:|---:|",
    ]
    for size, entry in sorted(results["fine_tuning"].items(), key=lambda kv: int(kv[0])):
        lines.append(f"| {size} | {_pct(entry['stolen'])} | {_pct(entry['scratch'])} |")
    lines += [
        "",
        "The stolen weights are worth the difference between the two columns: what the thief saves over "
        "training on its own images. The protection is access control, judged by the accuracy each attack "
        "restores for its label and compute budget, not by the size of the key space.",
        "",
    ]
    return "\n".join(lines)


def summary_lines(results: Dict[str, Any]) -> List[str]:
    acc, est = results["accuracy"], results["key_estimation"]
    out = [
        f"baseline {_pct(acc['baseline'])}; protected with K {_pct(acc['correct_key'])}, wrong keys "
        f"{_pct(acc['wrong_keys_mean'])} (max {_pct(acc['wrong_keys_max'])}), "
        f"no transform {_pct(acc['no_transform'])}; "
        f"chance {_pct(acc['chance'])}",
        f"key estimation: {_pct(est['accuracy'])} ({_pct(est['positions_recovered'])} of positions); best random key "
        f"{_pct(est['random_key_search']['accuracy'])}",
    ]
    for size, entry in sorted(results["fine_tuning"].items(), key=lambda kv: int(kv[0])):
        out.append(f"fine-tuning with {size} images: stolen {_pct(entry['stolen'])}, scratch {_pct(entry['scratch'])}")
    return out


def _budget_figure(results: Dict[str, Any], path: pathlib.Path) -> None:
    acc, est = results["accuracy"], results["key_estimation"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sizes = sorted(results["fine_tuning"], key=int)
    if sizes:
        xs = [int(k) for k in sizes]
        ax.plot(xs, [results["fine_tuning"][k]["stolen"] for k in sizes], "o-", label="fine-tuned stolen model")
        ax.plot(xs, [results["fine_tuning"][k]["scratch"] for k in sizes], "s--", label="trained from scratch")
    ax.scatter(
        [est["attack_images"]],
        [est["accuracy"]],
        marker="*",
        s=160,
        color="C3",
        zorder=3,
        label=f"key estimation ({est['rounds']} round(s))",
    )
    ax.scatter(
        [est["attack_images"]],
        [est["random_key_search"]["accuracy"]],
        marker="x",
        s=80,
        color="C4",
        zorder=3,
        label=f"best of {est['random_key_search']['keys']} random keys",
    )
    ax.axhline(acc["correct_key"], color="C2", ls=":", label="with the key")
    ax.axhline(acc["wrong_keys_mean"], color="gray", ls=":", label="wrong keys (mean)")
    ax.axhline(acc["chance"], color="black", ls="--", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_xlabel("labelled images the attacker uses")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title("What each attack restores, against its label budget")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_model_protection(out_dir: str | pathlib.Path) -> List[pathlib.Path]:
    """Write ``results.md`` and ``accuracy_vs_budget.png`` next to ``results.json``; returns
    their paths."""
    out = pathlib.Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    paths = [out / "results.md", out / "accuracy_vs_budget.png"]
    paths[0].write_text(markdown(results) + "\n![accuracy against the attack budget](accuracy_vs_budget.png)\n")
    _budget_figure(results, paths[1])
    return paths
