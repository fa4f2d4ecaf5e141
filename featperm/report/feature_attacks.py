"""Render the feature attacks' results (``results.json``, ``reconstructions.npz`` written by
:func:`featperm.experiments.feature_attacks.run_feature_attacks`) as ``results.md`` and PNG figures:
``attributes.png`` (per-attribute balanced accuracy, each condition, chance),
``key_recovery.png`` (known-plaintext and ciphertext-only curves) and ``reconstructions.png``
(originals and every condition's reconstructions). Every number comes from the files.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from featperm.experiments.feature_attacks import CONDITIONS

__all__ = ["render_feature_attacks", "markdown", "summary_lines", "condition_entry", "CONDITION_LABELS"]

CONDITION_LABELS = {
    ("plain", None): "plain features",
    ("shufflebits_fixed_key", "naive"): "ShuffleBits, fixed key — naive",
    ("shufflebits_fixed_key", "adaptive"): "ShuffleBits, fixed key — adaptive",
    ("shufflebits_per_request", "naive"): "ShuffleBits, per-request keys — naive",
    ("shufflebits_per_request", "adaptive"): "ShuffleBits, per-request keys — adaptive",
    ("sealed", "naive"): "ChaCha20-Poly1305 cascade — naive",
    ("sealed", "adaptive"): "ChaCha20-Poly1305 cascade — adaptive",
}


def condition_entry(section: Any, condition: str, attacker: Optional[str]) -> Optional[Dict[str, Any]]:
    """One condition's entry of a feature-attack section of ``results.json`` (``sealed`` naive
    sits at the top of its condition, as the experiment writes it); None where it is absent."""
    if not isinstance(section, dict):
        return None
    value = section.get(condition)
    if not isinstance(value, dict):
        return None
    if attacker is None or (condition == "sealed" and attacker == "naive"):
        return value
    inner = value.get(attacker)
    return inner if isinstance(inner, dict) else None


def _pct(x: Optional[float], digits: int = 1) -> str:
    return "–" if x is None else f"{100 * x:.{digits}f}%"


def _num(x: Optional[float], digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def markdown(results: Dict[str, Any]) -> str:
    """The Markdown report of one run."""
    lines: List[str] = ["# Attacks on deep features: plain, ShuffleBits, and the ChaCha20-Poly1305 cascade", ""]
    data, run = results.get("data", {}), results.get("run", {})
    lines += [
        f"Data: {data.get('source', '?')}. Feature size {data.get('extractor', {}).get('feature_dim', '?')}. "
        f"featperm {run.get('featperm', '?')}, torch {run.get('torch', '?')}, device {run.get('device', '?')}, "
        f"seed {run.get('seed', '?')}, {run.get('date', '?')}, {run.get('seconds', 0):.0f} s.",
        "",
    ]
    attr = results["attribute_inference"]
    rec = results.get("reconstruction", {})
    has_rec = "skipped" not in rec
    lines += ["## Attribute inference and reconstruction", ""]
    header = "| condition | mean balanced accuracy (chance " + _pct(attr["chance"]) + ") | 95% interval |"
    rule = "|---|---:|---:|"
    if has_rec:
        constant = rec.get("constant_reconstruction", {}).get("mean_cosine_distance")
        header += (
            " reconstruction: mean cosine distance (lower is closer; a constant reconstruction "
            + _num(constant)
            + ", random pairs of originals "
            + _num(rec["random_pairs"]["mean_cosine_distance"])
            + ") |"
        )
        rule += "---:|"
    lines += [header, rule]
    for condition, attacker in CONDITIONS:
        a = condition_entry(attr, condition, attacker)
        if a is None:
            continue
        interval = a.get("mean_balanced_accuracy_ci95") or [None, None]
        row = (
            f"| {CONDITION_LABELS[(condition, attacker)]} | {_pct(a.get('mean_balanced_accuracy'))} "
            f"| {_pct(interval[0])}–{_pct(interval[1])} |"
        )
        if has_rec:
            r = condition_entry(rec, condition, attacker)
            row += f" {_num(r.get('mean_cosine_distance') if r else None)} |"
        lines.append(row)
    lines += [
        "",
        f"Attribute heads: one batch norm + one linear layer per attribute, class-weighted cross-entropy, "
        f"selected on {attr['model_selection']['validation']} (epoch {attr['model_selection']['best_epoch']}). "
        f"Intervals: {attr.get('interval', 'none')}. "
        "Naive: the plaintext-trained models read intercepted words as float32 (non-finite values set to 0, each "
        "dimension clipped to a widened range of plain features). Adaptive: ciphertext-only cryptanalysis first.",
        "",
    ]
    if has_rec:
        lines += [f"Reconstruction perceptual network: {rec.get('perceptual_network')}.", ""]
    else:
        lines += [f"Reconstruction skipped: {rec.get('skipped')}.", ""]
    names = list(attr["chance_per_attribute"])
    lines += ["### Per attribute (balanced accuracy)", ""]
    columns = [(c, a) for c, a in CONDITIONS if condition_entry(attr, c, a) is not None]
    lines.append("| attribute | chance | " + " | ".join(CONDITION_LABELS[k] for k in columns) + " |")
    lines.append("|---|---:|" + "---:|" * len(columns))
    for name in names:
        cells = []
        for key in columns:
            entry = condition_entry(attr, *key)
            cells.append(_pct(entry["per_attribute"].get(name) if entry else None))
        lines.append(f"| {name} | {_pct(attr['chance_per_attribute'][name])} | " + " | ".join(cells) + " |")
    crypt = results["cryptanalysis"]
    known, fixed, single, leak = (
        crypt["known_plaintext"],
        crypt["ciphertext_only_fixed_key"],
        crypt["ciphertext_only_single_vector"],
        crypt["leakage"],
    )
    lines += [
        "",
        "## Cryptanalysis of ShuffleBits",
        "",
        "| attack | key positions recovered | values exact | sign and exponent exact | median relative error "
        "| cosine similarity | random key: sign and exponent exact / cosine |",
        "|---|---:|---:|---:|---:|---:|---:|",
        f"| ciphertext only, one key, {fixed['vectors']} intercepted vectors "
        f"| {_pct(fixed['key_positions_recovered'])} | {_pct(fixed['values_exact'])} "
        f"| {_pct(fixed['sign_exponent_exact'])} | {_pct(fixed['relative_error_median'])} | {_num(fixed['cosine'])} "
        f"| {_pct(fixed['random_key']['sign_exponent_exact'])} / {_num(fixed['random_key']['cosine'])} |",
        f"| ciphertext only, a fresh key per vector ({single['vectors']} vectors) "
        f"| {_pct(single['key_positions_recovered'])} | {_pct(single['values_exact'])} "
        f"| {_pct(single['sign_exponent_exact'])} | {_pct(single['relative_error_median'])} "
        f"| {_num(single['cosine_median'])} (median) "
        f"| {_pct(single['random_key']['sign_exponent_exact'])} / {_num(single['random_key']['cosine_median'])} |",
        "",
        "Values exact counts bitwise-equal words: zeros decrypt to zero under every key, and the low mantissa "
        "bits of real features are fair coins that no statistic can order, so without known plaintext it stays near "
        "the zero fraction; the sign, the exponent and the high mantissa bits, which carry the magnitude, are what "
        "the ciphertext-only attack recovers.",
        "",
        f"Known plaintext: one known vector ({known['words_per_vector']} words) gives a key that decrypts "
        f"{_pct(known['curve'][0]['values_exact'] if known['curve'] else None, 2)} of the other vectors' values "
        f"exactly; {known['pairs_to_full_key'] if known['pairs_to_full_key'] is not None else 'no number of'} "
        "known vector(s) decrypt every one of them. "
        + (
            f"The key is pinned down uniquely by {known['pairs_to_unique_key']} vector(s)."
            if known["pairs_to_unique_key"] is not None
            else "The key is never pinned down uniquely: bit positions that never differ in the features cannot "
            "be told apart, and need not be."
        ),
        f"Single-vector recovery runs at {single['vectors_per_second']:.0f} vectors/s here.",
        "",
        "## What no ShuffleBits key hides",
        "",
        "| measure | ShuffleBits | ChaCha20-Poly1305 cascade |",
        "|---|---:|---:|",
        f"| plaintext zeros exposed (share of the zeros; {_pct(leak['zero_fraction'], 2)} of all values are zero) "
        f"| {_pct(leak['shufflebits']['zero_fraction_exposed'])} | {_pct(leak['sealed']['zero_fraction_exposed'])} |",
        f"| correlation of ciphertext popcount with plaintext value | "
        f"{_num(leak['shufflebits']['hamming_weight_value_correlation'])} | "
        f"{_num(leak['sealed']['hamming_weight_value_correlation'])} |",
        f"| words with the plaintext's Hamming weight | {_pct(leak['shufflebits'].get('hamming_weight_equal'))} | "
        f"{_pct(leak['sealed'].get('hamming_weight_equal'))} |",
        "",
        f"The cascade's interceptor holds {leak['sealed']['bytes']} bytes "
        f"for {leak['sealed']['plaintext_bytes']} bytes "
        "of features: their size is all it learns.",
        "",
    ]
    figures = ["attributes.png", "key_recovery.png"] + (["reconstructions.png"] if has_rec else [])
    lines += ["## Figures", ""] + [f"![{f}]({f})" for f in figures] + [""]
    return "\n".join(lines)


def summary_lines(results: Dict[str, Any]) -> List[str]:
    """A few lines for the terminal."""
    attr, crypt = results["attribute_inference"], results["cryptanalysis"]
    out = [f"attribute inference (mean balanced accuracy; chance {_pct(attr['chance'])}):"]
    for key in CONDITIONS:
        entry = condition_entry(attr, *key)
        if entry is not None:
            out.append(f"  {CONDITION_LABELS[key]:<45} {_pct(entry['mean_balanced_accuracy'])}")
    rec = results.get("reconstruction", {})
    if "skipped" not in rec:
        out.append(
            f"reconstruction (mean cosine distance; random pairs {_num(rec['random_pairs']['mean_cosine_distance'])}):"
        )
        for key in CONDITIONS:
            entry = condition_entry(rec, *key)
            if entry is not None:
                out.append(f"  {CONDITION_LABELS[key]:<45} {_num(entry['mean_cosine_distance'])}")
    fixed, single = crypt["ciphertext_only_fixed_key"], crypt["ciphertext_only_single_vector"]
    out.append(
        f"ciphertext-only key recovery: one key, {fixed['vectors']} vectors: "
        f"{_pct(fixed['values_exact'])} values exact, "
        f"cosine {_num(fixed['cosine'])}; a fresh key per vector: median cosine {_num(single['cosine_median'])}"
    )
    leak = crypt["leakage"]
    out.append(
        f"known plaintext: {crypt['known_plaintext']['pairs_to_full_key']} vector(s) decrypt everything; "
        f"ShuffleBits exposes {_pct(leak['zero_fraction_exposed'])} of the zeros "
        f"({_pct(leak['zero_fraction'], 2)} of all values are zero)"
    )
    return out


def _attributes_figure(results: Dict[str, Any], path: pathlib.Path) -> None:
    attr = results["attribute_inference"]
    names = list(attr["chance_per_attribute"])
    keys = [k for k in CONDITIONS if condition_entry(attr, *k) is not None]
    fig, ax = plt.subplots(figsize=(max(8, 0.9 * len(names) + 3), 4.5))
    width = 0.8 / len(keys)
    x = np.arange(len(names))
    for i, key in enumerate(keys):
        entry = condition_entry(attr, *key)
        assert entry is not None
        values = [entry["per_attribute"].get(n) or 0.0 for n in names]
        ax.bar(x + (i - (len(keys) - 1) / 2) * width, values, width, label=CONDITION_LABELS[key])
    ax.scatter(x, [attr["chance_per_attribute"][n] for n in names], marker="_", s=400, color="black", label="chance")
    ax.set_xticks(x, names, rotation=30, ha="right")
    ax.set_ylabel("balanced accuracy")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title("Attribute inference on intercepted features")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _key_recovery_figure(results: Dict[str, Any], path: pathlib.Path) -> None:
    crypt = results["cryptanalysis"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    known = crypt["known_plaintext"]["curve"]
    ks = [p["vectors"] for p in known]
    left.plot(ks, [p["positions_unique"] for p in known], "o-", label="key positions pinned down")
    left.plot(ks, [p["values_exact"] for p in known], "s-", label="other values decrypted exactly")
    left.set_xlabel("known (plaintext, ciphertext) vectors")
    left.set_ylim(0, 1.02)
    left.set_title("Known plaintext")
    left.legend(fontsize=8)
    fixed = crypt["ciphertext_only_fixed_key"]
    vs = [p["vectors"] for p in fixed["curve"]]
    right.plot(vs, [p["key_positions_recovered"] for p in fixed["curve"]], "o-", label="key positions recovered")
    right.plot(vs, [p["values_exact"] for p in fixed["curve"]], "s-", label="values exact (bitwise)")
    right.plot(vs, [p["sign_exponent_exact"] for p in fixed["curve"]], "d-", label="sign and exponent exact")
    right.plot(vs, [p["cosine"] for p in fixed["curve"]], "^-", label="cosine similarity")
    right.axhline(
        fixed["random_key"]["sign_exponent_exact"], ls="--", color="gray", label="random key: sign and exponent exact"
    )
    right.set_xscale("log")
    right.set_xlabel("intercepted ciphertext vectors (one key)")
    right.set_ylim(min(0.0, fixed["random_key"]["cosine"] or 0.0), 1.02)
    right.set_title("Ciphertext only")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _reconstructions_figure(arrays: Dict[str, np.ndarray], path: pathlib.Path) -> None:
    rows: Sequence[str] = ["original"] + ["/".join(k for k in key if k) for key in CONDITIONS]
    rows = [r for r in rows if r in arrays]
    n, h, w, _ = arrays["original"].shape
    pad = 2
    grid = np.full((len(rows) * (h + pad), n * (w + pad), 3), 255, dtype=np.uint8)
    for r, name in enumerate(rows):
        for c in range(n):
            grid[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = arrays[name][c]
    fig, ax = plt.subplots(figsize=(max(4, n * w / 40 + 3.5), len(rows) * h / 40 + 0.8))
    ax.imshow(grid, interpolation="nearest")
    ax.set_yticks([r * (h + pad) + h / 2 for r in range(len(rows))])
    labels = {"/".join(k for k in key if k): text for key, text in CONDITION_LABELS.items()}
    ax.set_yticklabels([labels.get(r, r) for r in rows], fontsize=7)
    ax.set_xticks([])
    ax.set_title("Users' images and what the attacker reconstructs", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def render_feature_attacks(out_dir: str | pathlib.Path) -> List[pathlib.Path]:
    """Write ``results.md`` and the PNG figures next to ``results.json``; returns their paths."""
    out = pathlib.Path(out_dir)
    results = json.loads((out / "results.json").read_text())
    written = [out / "results.md", out / "attributes.png", out / "key_recovery.png"]
    written[0].write_text(markdown(results))
    _attributes_figure(results, written[1])
    _key_recovery_figure(results, written[2])
    npz = out / "reconstructions.npz"
    if npz.is_file() and "skipped" not in results.get("reconstruction", {}):
        with np.load(npz) as data:
            arrays = {k: data[k] for k in data.files}
        written.append(out / "reconstructions.png")
        _reconstructions_figure(arrays, written[-1])
    return written
