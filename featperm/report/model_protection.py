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


def _table_one(results: Dict[str, Any]) -> List[str]:
    acc = results["accuracy"]
    return [
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
    ]


def _transform_table(results: Dict[str, Any]) -> List[str]:
    chance = results.get("accuracy", {}).get("chance")
    lines = [
        "## Table I (continued): input-transform baselines (the same network trained on key-transformed images)",
        "",
        "| transform | M | correct key | wrong keys (mean; max) | plain images | chance |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, by_size in results["transforms"].items():
        for m, entry in sorted(by_size.items(), key=lambda kv: int(kv[0])):
            lines.append(
                f"| {name} | {m} | {_pct(entry['correct_key'])} | {_pct(entry['wrong_keys_mean'])} "
                f"(max {_pct(entry['wrong_keys_max'])}) | {_pct(entry['plain_images'])} | {_pct(chance)} |"
            )
    return lines + [""]


def _table_two(results: Dict[str, Any]) -> List[str]:
    est = results["key_estimation"]
    chance = results.get("accuracy", {}).get("chance")
    return [
        "## Table II: key estimation (no key; the thief's labelled attack images)",
        "",
        f"Chance: {_pct(chance)}; with the key: {_pct(results.get('accuracy', {}).get('correct_key'))}.",
        "",
        "| attack | test accuracy | key positions recovered | budget |",
        "|---|---:|---:|---|",
        f"| starting key (random) | {_pct(est['initial_key_accuracy'])} | – | – |",
        f"| greedy pairwise swaps (Algorithm 1) | {_pct(est['accuracy'])} | {_pct(est['positions_recovered'])} "
        f"| {est['attack_images']} labelled images ({est.get('attack_images_correct', '?')} right at the end), "
        f"{est['rounds']} round(s), {est['candidates_evaluated']} candidate keys, {est['seconds']:.0f} s |",
        f"| best of {est['random_key_search']['keys']} random keys | {_pct(est['random_key_search']['accuracy'])} "
        f"| {_pct(est['random_key_search']['positions_recovered'])} | the same images |",
        "",
    ]


def _table_three(results: Dict[str, Any]) -> List[str]:
    chance = results.get("accuracy", {}).get("chance")
    lines = [
        "## Table III: fine-tuning the stolen model without its key",
        "",
        f"Chance: {_pct(chance)}. The recipe's learning rate, and a gentler one "
        f"(x{results.get('settings', {}).get('fine-tune', {}).get('gentle_lr_scale', '?')}).",
        "",
        "| labelled images \\|D′\\| | stolen model, fine-tuned (recipe) | stolen model, gentler rate "
        "| trained from scratch on the same images |",
        "|---:|---:|---:|---:|",
    ]
    for size, entry in sorted(results["fine_tuning"].items(), key=lambda kv: int(kv[0])):
        lines.append(
            f"| {size} | {_pct(entry['stolen'])} | {_pct(entry.get('stolen_gentle'))} | {_pct(entry['scratch'])} |"
        )
    return lines + [
        "",
        "The stolen weights are worth the difference between the best stolen column and the scratch column: "
        "what the thief saves over training on its own images.",
        "",
    ]


def markdown(results: Dict[str, Any]) -> str:
    """The Markdown report of one run (the tables of the stages it holds)."""
    model, data, run = results["model"], results["data"], results["run"]
    lines: List[str] = [
        "# Block-wise feature-map protection (AprilPyone & Kiya 2021): accuracy and attacks",
        "",
        f"Data: {data['name']} ({data['train']} training, {data['test']} test images, {data['classes']} classes). "
        f"Model: {model['architecture']}, width {model['width']}, shuffle after {model['at']} with M = "
        f"{model['block_size']} ({results['key_positions']} key positions; key space (C·M·M)! = "
        f"10^{results['key_space_log10']:.0f}). Recipe: {run['preset']} ({run['train']['epochs']} epochs). "
        f"featperm {run['featperm']}, torch {run['torch']}, {run['device']} x {run.get('processes', 1)} "
        f"process(es), seed {run['seed']}, {run['seconds']:.0f} s. The key is in `{run.get('key_file', 'key.fpk')}`, "
        "never in the checkpoints.",
        "",
    ]
    for section, table in (
        ("accuracy", _table_one),
        ("transforms", _transform_table),
        ("key_estimation", _table_two),
        ("fine_tuning", _table_three),
    ):
        if results.get(section):
            lines += table(results)
    lines += [
        "The protection is access control, not cryptography: judge it by the accuracy each attack restores for "
        "its label and compute budget, not by the size of the key space.",
        "",
    ]
    return "\n".join(lines)


def summary_lines(results: Dict[str, Any]) -> List[str]:
    """A few terminal lines: Table I, the attacks and the baselines, for the stages run."""
    out = []
    acc = results.get("accuracy")
    if acc:
        out.append(
            f"baseline {_pct(acc['baseline'])}; protected with K {_pct(acc['correct_key'])}, wrong keys "
            f"{_pct(acc['wrong_keys_mean'])} (max {_pct(acc['wrong_keys_max'])}), "
            f"no transform {_pct(acc['no_transform'])}; chance {_pct(acc['chance'])}"
        )
    for name, by_size in results.get("transforms", {}).items():
        for m, entry in sorted(by_size.items(), key=lambda kv: int(kv[0])):
            out.append(
                f"{name} M={m}: key {_pct(entry['correct_key'])}, wrong keys {_pct(entry['wrong_keys_mean'])}, "
                f"plain images {_pct(entry['plain_images'])}"
            )
    est = results.get("key_estimation")
    if est:
        out.append(
            f"key estimation: {_pct(est['accuracy'])} ({_pct(est['positions_recovered'])} of positions); "
            f"best random key {_pct(est['random_key_search']['accuracy'])}"
        )
    for size, entry in sorted(results.get("fine_tuning", {}).items(), key=lambda kv: int(kv[0])):
        out.append(
            f"fine-tuning with {size} images: stolen {_pct(entry['stolen'])} (gentler "
            f"{_pct(entry.get('stolen_gentle'))}), scratch {_pct(entry['scratch'])}"
        )
    return out


def _budget_figure(results: Dict[str, Any], path: pathlib.Path) -> None:
    acc, est = results["accuracy"], results["key_estimation"]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    sizes = sorted(results.get("fine_tuning", {}), key=int)
    if sizes:
        xs = [int(k) for k in sizes]
        tuned = results["fine_tuning"]
        ax.plot(xs, [tuned[k]["stolen"] for k in sizes], "o-", label="fine-tuned stolen model (recipe)")
        if all("stolen_gentle" in tuned[k] for k in sizes):
            ax.plot(xs, [tuned[k]["stolen_gentle"] for k in sizes], "^-", label="fine-tuned stolen model (gentler)")
        ax.plot(xs, [tuned[k]["scratch"] for k in sizes], "s--", label="trained from scratch")
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
    """Write ``results.md`` (and ``accuracy_vs_budget.png`` when the run holds Table I and the
    key estimation) next to ``results.json``; returns their paths."""
    out = pathlib.Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    paths = [out / "results.md"]
    text = markdown(results)
    if results.get("accuracy") and results.get("key_estimation"):
        paths.append(out / "accuracy_vs_budget.png")
        _budget_figure(results, paths[1])
        text += "\n![accuracy against the attack budget](accuracy_vs_budget.png)\n"
    paths[0].write_text(text)
    return paths
