"""The one-page report of ``featperm demo``, rendered only from the stages' result files.

A demo output folder holds one subfolder per stage, each with its ``results.json``:

* ``feature_attacks/`` — :func:`featperm.experiments.feature_attacks.run_feature_attacks`
  (and its ``reconstructions.npz``);
* ``model_protection/`` — :func:`featperm.experiments.model_protection.run_model_protection`;
* ``throughput/`` — the op timings of :func:`featperm.demo.measure_throughput`.

:func:`render_demo_report` renders each stage's own report and figures (``results.md`` and PNGs,
by :mod:`~featperm.report.feature_attacks` and :mod:`~featperm.report.model_protection`;
``throughput.png`` here), then ``report.md`` and the same page as a self-contained
``report.html`` (figures embedded as base64 data URIs, an inline stylesheet, nothing fetched).
It can re-render a folder at any time without running anything. Every attack table carries a
chance column and an honest baseline; the throughput table has ``clone()`` as its baseline.
"""

from __future__ import annotations

import base64
import html
import json
import math
import pathlib
import re
from typing import Any, Dict, List, Optional, Sequence

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from featperm.experiments.feature_attacks import CONDITIONS
from featperm.report.feature_attacks import CONDITION_LABELS, condition_entry, render_feature_attacks
from featperm.report.model_protection import render_model_protection

__all__ = [
    "STAGES",
    "THROUGHPUT_OPS",
    "load_stage_results",
    "demo_markdown",
    "markdown_to_html",
    "render_demo_report",
    "summary_lines",
]

# Stage subfolders, in report order.
STAGES = ("feature_attacks", "model_protection", "throughput")
# The ops the throughput stage times against clone(), in table order.
THROUGHPUT_OPS = ("shuffle_bits", "unshuffle_bits", "block_shuffle", "seal")

Results = Dict[str, Any]


# -- numbers ------------------------------------------------------------------------------------


def _frac(x: Optional[float], digits: int = 1) -> str:
    """A fraction in [0, 1] as a percentage; – when absent."""
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.{digits}f}%"


def _pc(x: Optional[float]) -> str:
    """A value already in percent (the model-protection results)."""
    return "–" if x is None else f"{x:.1f}%"


def _num(x: Optional[float], digits: int = 3) -> str:
    return "–" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _regained(value: Optional[float], chance: Optional[float], reference: Optional[float]) -> str:
    """The share of the reference's lead over chance that ``value`` reaches (100%: all of it,
    0%: none); – where the reference is not clearly above chance."""
    if value is None or chance is None or reference is None or reference - chance <= 1e-9:
        return "–"
    return f"{100 * (value - chance) / (reference - chance):.0f}%"


def _get(tree: Any, *path: Any) -> Any:
    """``tree[path[0]][path[1]]...`` or None where any step is missing (results from other
    versions of a stage may lack a key)."""
    for step in path:
        if isinstance(tree, dict) and step in tree:
            tree = tree[step]
        elif isinstance(tree, list) and isinstance(step, int) and -len(tree) <= step < len(tree):
            tree = tree[step]
        else:
            return None
    return tree


# -- loading ------------------------------------------------------------------------------------


def load_stage_results(out_dir: str | pathlib.Path) -> Dict[str, Optional[Results]]:
    """``{stage: results}`` for each of :data:`STAGES`, read from ``out_dir/<stage>/results.json``
    (None for a stage without the file)."""
    out = pathlib.Path(out_dir)
    loaded: Dict[str, Optional[Results]] = {}
    for stage in STAGES:
        path = out / stage / "results.json"
        loaded[stage] = json.loads(path.read_text()) if path.is_file() else None
    return loaded


# -- the Markdown page --------------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]) -> List[str]:
    """A Markdown table; ``align`` holds "l" or "r" per column."""
    rule = "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"
    return ["| " + " | ".join(header) + " |", rule] + ["| " + " | ".join(row) + " |" for row in rows]


def _run_line(results: Results) -> str:
    run = results.get("run", {})
    return (
        f"featperm {run.get('featperm', '?')}, torch {run.get('torch', '?')}, device {run.get('device', '?')}, "
        f"seed {run.get('seed', '?')}, {run.get('seconds', 0):.0f} s"
    )


def _verdicts(fa: Optional[Results], mp: Optional[Results], tp: Optional[Results]) -> List[str]:
    lines = ["## In short", ""]
    if fa is not None:
        attr = fa["attribute_inference"]
        chance, plain = attr["chance"], _get(attr, "plain", "mean_balanced_accuracy")
        naive = _get(condition_entry(attr, "shufflebits_fixed_key", "naive"), "mean_balanced_accuracy")
        adaptive = _get(condition_entry(attr, "shufflebits_fixed_key", "adaptive"), "mean_balanced_accuracy")
        per_request = _get(condition_entry(attr, "shufflebits_per_request", "adaptive"), "mean_balanced_accuracy")
        sealed = _get(condition_entry(attr, "sealed", "adaptive"), "mean_balanced_accuracy")
        known = _get(fa, "cryptanalysis", "known_plaintext", "curve", 0, "values_exact")
        lines.append(
            f"- **ShuffleBits is obfuscation, not encryption.** Read as features, its ciphertext gives the "
            f"attribute attacker {_frac(naive)} (chance {_frac(chance)}); an adaptive attacker who first recovers "
            f"the key from the intercepted vectors alone gets {_frac(adaptive)}, against {_frac(plain)} from plain "
            f"features ({_regained(adaptive, chance, plain)} of plain features' lead over chance). A fresh key per "
            f"request still leaves {_frac(per_request)}. One known plaintext vector decrypts "
            f"{_frac(known)} of the other values exactly."
        )
        sealed_leak = _get(fa, "cryptanalysis", "leakage", "sealed") or {}
        lines.append(
            f"- **The ChaCha20-Poly1305 cascade is encryption.** The same adaptive attacker gets {_frac(sealed)} "
            f"(chance {_frac(chance)}); its ciphertext keeps {_frac(sealed_leak.get('zero_fraction_exposed'))} of "
            f"the zeros that ShuffleBits shows, and its size is public."
        )
    if mp is not None and mp.get("accuracy"):
        acc, est = mp["accuracy"], mp.get("key_estimation", {})
        scratch = _get(mp, "fine_tuning", str(est.get("attack_images")), "scratch")
        lines.append(
            f"- **Block shuffle is access control, judged by what each attack restores for its budget.** The "
            f"protected CNN scores {_pc(acc.get('correct_key'))} with its key, {_pc(acc.get('wrong_keys_mean'))} "
            f"with wrong keys and {_pc(acc.get('no_transform'))} without the transform (chance "
            f"{_pc(acc.get('chance'))}). Key estimation with {est.get('attack_images', '?')} labelled images "
            f"restores {_pc(est.get('accuracy'))}"
            + (f"; training from scratch on the same images reaches {_pc(scratch)}." if scratch is not None else ".")
        )
    if tp is not None and "skipped" not in tp:
        ratios = ", ".join(
            f"{op} {_get(tp, 'ops', op, 'vs_clone'):.2f}×"
            for op in THROUGHPUT_OPS
            if _get(tp, "ops", op, "vs_clone") is not None
        )
        lines.append(
            f"- **Cost** on {tp.get('device_name', tp.get('device', '?'))}: throughput relative to "
            f"`clone()` of the same tensor: {ratios}."
        )
    lines.append("")
    return lines


def _feature_section(fa: Results) -> List[str]:
    attr, data = fa["attribute_inference"], fa.get("data", {})
    chance = attr["chance"]
    plain = _get(attr, "plain", "mean_balanced_accuracy")
    extractor = data.get("extractor", {})
    lines = [
        "## 1. Deep features: what an attacker learns under each protection",
        "",
        f"A proprietary feature extractor ({extractor.get('architecture', 'CNN')}, "
        f"{extractor.get('feature_dim', '?')} features, epochs: {extractor.get('epochs', '?')}) is trained on "
        f"{_get(data, 'proprietary', 'images') or '?'} images of {data.get('source', 'the built-in data')} "
        f"(domain {_get(data, 'proprietary', 'domain') or '?'}). The attacker has black-box access (plain "
        f"features of its own images), {_get(data, 'attacker_local', 'images') or '?'} labelled images of its "
        f"own (domain {_get(data, 'attacker_local', 'domain') or '?'}), and the intercepted features of "
        f"{_get(data, 'users', 'images') or '?'} users' images. It never sees the extractor's weights. "
        "Naive: the attacker reads the intercepted words as features. Adaptive: it first recovers the "
        f"ShuffleBits key from the intercepted vectors alone (ciphertext only). {_run_line(fa)}.",
        "",
        "### Attribute inference",
        "",
    ]
    rows = []
    for condition, attacker in CONDITIONS:
        entry = condition_entry(attr, condition, attacker)
        if entry is None:
            continue
        value = entry.get("mean_balanced_accuracy")
        low, high = (entry.get("mean_balanced_accuracy_ci95") or [None, None])[:2]
        rows.append(
            [
                CONDITION_LABELS[(condition, attacker)],
                f"{_frac(value)} ({_frac(low)}–{_frac(high)})",
                _frac(chance),
                _frac(plain),
                _regained(value, chance, plain),
            ]
        )
    lines += _table(
        [
            "intercepted features — attacker",
            "mean balanced accuracy (95% interval)",
            "chance",
            "baseline: plain features",
            "plain's lead over chance regained",
        ],
        rows,
        "lrrrr",
    )
    lines += [
        "",
        f"{len(attr.get('chance_per_attribute', {}))} attributes; {attr.get('interval', '')}. Per attribute: "
        "[feature_attacks/results.md](feature_attacks/results.md).",
        "",
        "![Attribute accuracy per attribute, each condition, and chance](feature_attacks/attributes.png)",
        "",
    ]
    rec = fa.get("reconstruction", {})
    lines += ["### Reconstruction of the users' images", ""]
    if "skipped" in rec:
        lines += [f"Skipped: {rec['skipped']}.", ""]
        return lines
    random_pairs = _get(rec, "random_pairs", "mean_cosine_distance")
    constant = _get(rec, "constant_reconstruction", "mean_cosine_distance")
    plain_rec = _get(rec, "plain", "mean_cosine_distance")
    rows = []
    for condition, attacker in CONDITIONS:
        entry = condition_entry(rec, condition, attacker)
        if entry is None:
            continue
        rows.append(
            [
                CONDITION_LABELS[(condition, attacker)],
                _num(entry.get("mean_cosine_distance")),
                _num(random_pairs),
                _num(constant),
                _num(plain_rec),
            ]
        )
    lines += _table(
        [
            "intercepted features — attacker",
            "mean cosine distance of the reconstruction's features to the user's (lower is closer)",
            "chance: random pairs of users",
            "baseline: one constant image",
            "baseline: from plain features",
        ],
        rows,
        "lrrrr",
    )
    lines += [
        "",
        f"The generator is trained on the attacker's own images and their plain features; perceptual network: "
        f"{rec.get('perceptual_network', '?')}. A reconstruction closer than the constant image carries "
        "information about the user's image.",
        "",
        "![Users' images (top row) and what the attacker reconstructs from each condition's intercepted "
        "features](feature_attacks/reconstructions.png)",
        "",
    ]
    return lines


def _key_recovery_section(fa: Results) -> List[str]:
    crypt = fa["cryptanalysis"]
    known, fixed = crypt["known_plaintext"], crypt["ciphertext_only_fixed_key"]
    single, leak = crypt["ciphertext_only_single_vector"], crypt["leakage"]
    zeros = _frac(leak.get("zero_fraction"), 2)
    first = known["curve"][0] if known.get("curve") else {}
    fixed_random, single_random = fixed.get("random_key", {}), single.get("random_key", {})
    rows = [
        [
            f"known plaintext: {first.get('vectors', '?')} known (plaintext, ciphertext) vector(s) of "
            f"{known.get('words_per_vector', '?')} words",
            f"{_frac(first.get('positions_unique'))} (pinned down)",
            _frac(first.get("values_exact"), 2),
            "–",
            "–",
            f"{_frac(fixed_random.get('values_exact'), 2)} / {_frac(fixed_random.get('sign_exponent_exact'))} / "
            f"{_num(fixed_random.get('cosine'))}",
            zeros,
        ],
        [
            f"ciphertext only, one key: {fixed['vectors']} intercepted vectors",
            _frac(fixed.get("key_positions_recovered")),
            _frac(fixed.get("values_exact"), 2),
            _frac(fixed.get("sign_exponent_exact")),
            _num(fixed.get("cosine")),
            f"{_frac(fixed_random.get('values_exact'), 2)} / {_frac(fixed_random.get('sign_exponent_exact'))} / "
            f"{_num(fixed_random.get('cosine'))}",
            zeros,
        ],
        [
            f"ciphertext only, a fresh key per vector: {single['vectors']} vectors, each on its own",
            _frac(single.get("key_positions_recovered")),
            _frac(single.get("values_exact"), 2),
            _frac(single.get("sign_exponent_exact")),
            f"{_num(single.get('cosine_median'))} (median)",
            f"{_frac(single_random.get('values_exact'), 2)} / {_frac(single_random.get('sign_exponent_exact'))} / "
            f"{_num(single_random.get('cosine_median'))}",
            zeros,
        ],
    ]
    full = known.get("pairs_to_full_key")
    shuffle_leak, sealed_leak = leak.get("shufflebits", {}), leak.get("sealed", {})
    lines = [
        "## 2. ShuffleBits: key recovery, and what no key hides",
        "",
        *_table(
            [
                "attack on ShuffleBits",
                "key positions recovered",
                "values decrypted exactly",
                "sign and exponent exact",
                "cosine similarity to the plain features",
                "chance: a random key (values exact / sign and exponent / cosine)",
                "baseline: values that are zero (exact under any key)",
            ],
            rows,
            "lrrrrrr",
        ),
        "",
        f"Known plaintext: {full if full is not None else 'no number of'} known vector(s) decrypt every other "
        "value exactly. Ciphertext only: the sign, exponent and high mantissa bits, which carry the magnitude, "
        "come back; the low mantissa bits are fair coins no statistic can order, so values exact stays near the "
        "zero fraction while the cosine similarity approaches 1. The curves against the number of intercepted "
        "and known vectors:",
        "",
        "![Key recovery against known and intercepted vectors](feature_attacks/key_recovery.png)",
        "",
        "What no ShuffleBits key hides, next to the cascade (ShuffleBits, then ChaCha20-Poly1305):",
        "",
        f"- zeros: ShuffleBits shows {_frac(shuffle_leak.get('zero_fraction_exposed'))} of the plaintext zeros "
        f"as zeros ({zeros} of the values are zero); the cascade {_frac(sealed_leak.get('zero_fraction_exposed'))}.",
        f"- Hamming weight: {_frac(shuffle_leak.get('hamming_weight_equal'))} of ShuffleBits words keep the "
        f"plaintext's popcount (correlation of popcount with value "
        f"{_num(shuffle_leak.get('hamming_weight_value_correlation'))}); the cascade "
        f"{_frac(sealed_leak.get('hamming_weight_equal'))} "
        f"({_num(sealed_leak.get('hamming_weight_value_correlation'))}).",
        f"- size: the cascade's interceptor holds {sealed_leak.get('bytes', '?')} bytes for "
        f"{sealed_leak.get('plaintext_bytes', '?')} bytes of features.",
        "",
    ]
    return lines


def _protection_section(mp: Results) -> List[str]:
    acc, est = mp.get("accuracy") or {}, mp.get("key_estimation", {})
    data, model, run = mp.get("data", {}), mp.get("model", {}), mp.get("run", {})
    chance, baseline = _pc(acc.get("chance")), _pc(acc.get("baseline"))
    key_space = mp.get("key_space_log10")
    lines = [
        "## 3. A CNN protected by a block-shuffle key",
        "",
        f"{model.get('architecture', 'CNN')}, width {model.get('width', '?')}, trained on {data.get('name', '?')} "
        f"({data.get('train', '?')} training, {data.get('test', '?')} test images, {data.get('classes', '?')} "
        f"classes) with a secret block shuffle after {model.get('at', '?')} (M = {model.get('block_size', '?')}, "
        f"{mp.get('key_positions', '?')} key positions"
        + (f", key space 10^{key_space:.0f}" if isinstance(key_space, (int, float)) else "")
        + f"); recipe {run.get('preset', '?')}, epochs: {_get(run, 'train', 'epochs') or '?'}. {_run_line(mp)}.",
        "",
        *_table(
            ["model", "test accuracy", "chance", "baseline: unprotected model, same recipe"],
            [
                ["protected, with its key K", _pc(acc.get("correct_key")), chance, baseline],
                [
                    f"protected, wrong keys (mean of {acc.get('wrong_keys', '?')}; max "
                    f"{_pc(acc.get('wrong_keys_max'))})",
                    _pc(acc.get("wrong_keys_mean")),
                    chance,
                    baseline,
                ],
                ["protected, without the transform", _pc(acc.get("no_transform")), chance, baseline],
            ],
            "lrrr",
        ),
        "",
        "The attacker holds the protected weights but not the key, and a budget of labelled images and compute. "
        "The honest baseline of each attack is what the same labelled images buy without the stolen weights: "
        "a model trained from scratch on them.",
        "",
    ]
    fine_tuning = mp.get("fine_tuning") or {}
    with_key = _pc(acc.get("correct_key"))

    def scratch(size: Any) -> str:
        return _pc(_get(fine_tuning, str(size), "scratch"))

    rows = [["starting key (random)", "0", "–", _pc(est.get("initial_key_accuracy")), chance, "–", with_key]]
    if est:
        rows.append(
            [
                f"key estimation (greedy pairwise swaps, {est.get('rounds', '?')} round(s))",
                str(est.get("attack_images", "?")),
                f"{est.get('candidates_evaluated', '?')} candidate keys, {est.get('seconds', 0):.0f} s",
                _pc(est.get("accuracy")),
                chance,
                scratch(est.get("attack_images")),
                with_key,
            ]
        )
        search = est.get("random_key_search", {})
        rows.append(
            [
                f"best of {search.get('keys', '?')} random keys",
                str(est.get("attack_images", "?")),
                f"{search.get('keys', '?')} keys",
                _pc(search.get("accuracy")),
                chance,
                scratch(est.get("attack_images")),
                with_key,
            ]
        )
    for size, entry in sorted(fine_tuning.items(), key=lambda kv: int(kv[0])):
        variants = [("fine-tuning the stolen weights without the key", entry.get("stolen"))]
        if "stolen_gentle" in entry:  # the same, at a gentler learning rate (newer results)
            variants.append(("the same at a gentler learning rate", entry.get("stolen_gentle")))
        for label, value in variants:
            rows.append([label, str(size), "training", _pc(value), chance, _pc(entry.get("scratch")), with_key])
    lines += _table(
        [
            "attack on the protected model (no key)",
            "labelled images",
            "compute",
            "test accuracy",
            "chance",
            "baseline: trained from scratch on the same images",
            "baseline: with the key",
        ],
        rows,
        "lrlrrrr",
    )
    lines += [
        "",
        "![Test accuracy each attack restores against the labelled images it uses](model_protection/"
        "accuracy_vs_budget.png)",
        "",
        "Tables I-III in full: [model_protection/results.md](model_protection/results.md).",
        "",
    ]
    return lines


def _throughput_section(tp: Results) -> List[str]:
    lines = ["## 4. What the ops cost: throughput against `clone()`", ""]
    if "skipped" in tp:
        return lines + [f"Not measured: {tp['skipped']}.", ""]
    tensor, clone = tp.get("tensor", {}), _get(tp, "ops", "clone") or {}
    rows = []
    for op in THROUGHPUT_OPS:
        entry = _get(tp, "ops", op)
        if entry is None:
            continue
        rows.append(
            [
                f"`{op}`",
                _num(entry.get("median_ms"), 2),
                _num(entry.get("gb_per_s"), 2),
                f"{_num(entry.get('vs_clone'), 2)}×",
                f"{_num(clone.get('median_ms'), 2)} ms ({_num(clone.get('gb_per_s'), 2)} GB/s)",
            ]
        )
    checks = tp.get("checks", {})
    lines += _table(
        [
            "op",
            "median time (ms)",
            "GB/s of tensor",
            "throughput relative to clone() (median of per-round ratios)",
            "baseline: clone() of the same tensor",
        ],
        rows,
        "lrrrr",
    )
    lines += [
        "",
        f"One {tensor.get('dtype', '?')} tensor of shape {tuple(tensor.get('shape', ()))} "
        f"({tensor.get('bytes', 0) / 2**20:.1f} MiB) on {tp.get('device_name', tp.get('device', '?'))} "
        f"({tp.get('threads', '?')} threads); each op called once per round, in turn with `clone()`, for "
        f"{tp.get('rounds', '?')} rounds ({tp.get('timing', 'wall clock')}). Round trips checked on the same "
        "tensor: "
        + "; ".join(f"{name.replace('_', ' ')}: {'yes' if ok else 'NO'}" for name, ok in checks.items())
        + f". {_run_line(tp)}.",
        "",
        "![Throughput of each op and of clone() on the same tensor](throughput/throughput.png)",
        "",
    ]
    return lines


def demo_markdown(stages: Dict[str, Optional[Results]]) -> str:
    """The report page (Markdown) from ``{stage: results}`` (:func:`load_stage_results`); images
    are linked relative to the output folder."""
    fa, mp, tp = (stages.get(s) for s in STAGES)
    seconds = [float(_get(r, "run", "seconds") or 0.0) for r in (fa, mp, tp) if r is not None]
    first = next((r for r in (fa, mp, tp) if r is not None), {}) or {}
    lines = [
        "# featperm demo: what an attacker learns from deep features, and what featperm changes",
        "",
        f"Built-in data, no download. Seed {_get(first, 'run', 'seed')}, device {_get(first, 'run', 'device')}, "
        f"featperm {_get(first, 'run', 'featperm')}, torch {_get(first, 'run', 'torch')}; the stages ran "
        f"{sum(seconds):.0f} s in all. Every number below is read from the stages' `results.json`; "
        "`featperm demo --report-only --out DIR` renders this page again from them.",
        "",
    ]
    lines += _verdicts(fa, mp, tp)
    if fa is not None:
        lines += _feature_section(fa) + _key_recovery_section(fa)
    else:
        lines += ["## 1-2. Deep features", "", "Not run: no `feature_attacks/results.json`.", ""]
    if mp is not None:
        lines += _protection_section(mp)
    else:
        lines += ["## 3. Model protection", "", "Not run: no `model_protection/results.json`.", ""]
    if tp is not None:
        lines += _throughput_section(tp)
    else:
        lines += ["## 4. Throughput", "", "Not run: no `throughput/results.json`.", ""]
    lines += [
        "## Files",
        "",
        *[f"- `{s}/results.json`" + ("" if stages.get(s) is not None else " (absent)") for s in STAGES],
        "",
    ]
    return "\n".join(lines)


def summary_lines(stages: Dict[str, Optional[Results]]) -> List[str]:
    """About a dozen lines of the key numbers for the terminal."""
    fa, mp, tp = (stages.get(s) for s in STAGES)
    out: List[str] = []
    if fa is not None:
        attr = fa["attribute_inference"]
        chance = attr["chance"]

        def acc(condition: str, attacker: Optional[str]) -> str:
            return _frac(_get(condition_entry(attr, condition, attacker), "mean_balanced_accuracy"))

        out.append(f"attribute inference (mean balanced accuracy; chance {_frac(chance)}): plain {acc('plain', None)}")
        out.append(
            f"  ShuffleBits naive {acc('shufflebits_fixed_key', 'naive')}, adaptive "
            f"{acc('shufflebits_fixed_key', 'adaptive')}; per-request keys adaptive "
            f"{acc('shufflebits_per_request', 'adaptive')}; cascade adaptive {acc('sealed', 'adaptive')}"
        )
        rec = fa.get("reconstruction", {})
        if "skipped" not in rec:

            def dist(condition: str, attacker: Optional[str]) -> str:
                return _num(_get(condition_entry(rec, condition, attacker), "mean_cosine_distance"))

            random_pairs = _num(_get(rec, "random_pairs", "mean_cosine_distance"))
            out.append(
                f"reconstruction (cosine distance; random pairs {random_pairs}"
                f", constant image {_num(_get(rec, 'constant_reconstruction', 'mean_cosine_distance'))}): plain "
                f"{dist('plain', None)}, ShuffleBits adaptive {dist('shufflebits_fixed_key', 'adaptive')}, cascade "
                f"adaptive {dist('sealed', 'adaptive')}"
            )
        crypt = fa["cryptanalysis"]
        fixed = crypt["ciphertext_only_fixed_key"]
        out.append(
            f"ShuffleBits key recovery: {crypt['known_plaintext'].get('pairs_to_full_key')} known vector(s) decrypt "
            f"everything; ciphertext only, {fixed['vectors']} vectors: cosine {_num(fixed.get('cosine'))} "
            f"(random key {_num(_get(fixed, 'random_key', 'cosine'))})"
        )
    if mp is not None:
        acc_mp, est = mp.get("accuracy") or {}, mp.get("key_estimation", {})
        out.append(
            f"block shuffle: with key {_pc(acc_mp.get('correct_key'))}, wrong keys {_pc(acc_mp.get('wrong_keys_mean'))}"
            f", no transform {_pc(acc_mp.get('no_transform'))} (chance {_pc(acc_mp.get('chance'))}, unprotected "
            f"{_pc(acc_mp.get('baseline'))})"
        )
        scratch = _get(mp, "fine_tuning", str(est.get("attack_images")), "scratch")
        out.append(
            f"  key estimation with {est.get('attack_images', '?')} labelled images: {_pc(est.get('accuracy'))}"
            + (f" (scratch on the same images {_pc(scratch)})" if scratch is not None else "")
        )
        tuned = ", ".join(
            f"{size}: {_pc(entry.get('stolen'))} / {_pc(entry.get('stolen_gentle'))} vs {_pc(entry.get('scratch'))}"
            for size, entry in sorted((mp.get("fine_tuning") or {}).items(), key=lambda kv: int(kv[0]))
        )
        if tuned:
            out.append(f"  fine-tuned stolen weights (recipe's / gentler learning rate) vs scratch, by images: {tuned}")
    if tp is not None:
        if "skipped" in tp:
            out.append(f"throughput: not measured ({tp['skipped']})")
        else:
            ratios = ", ".join(
                f"{op} {_num(_get(tp, 'ops', op, 'vs_clone'), 2)}×" for op in THROUGHPUT_OPS if _get(tp, "ops", op)
            )
            out.append(f"throughput relative to clone() on {tp.get('device', '?')}: {ratios}")
    out.append(
        "ShuffleBits is obfuscation; the ChaCha20-Poly1305 cascade is encryption; block shuffle is access control."
    )
    return out


# -- figures ------------------------------------------------------------------------------------


def _throughput_figure(tp: Results, path: pathlib.Path) -> None:
    names = ["clone"] + [op for op in THROUGHPUT_OPS if _get(tp, "ops", op)]
    values = [float(_get(tp, "ops", name, "gb_per_s") or 0.0) for name in names]
    fig, ax = plt.subplots(figsize=(7, 3.8))
    colours = ["gray"] + [f"C{i}" for i in range(len(names) - 1)]
    bars = ax.bar(names, values, color=colours)
    for bar, name in zip(bars[1:], names[1:]):
        ratio = _get(tp, "ops", name, "vs_clone")
        if ratio is not None:
            ax.annotate(
                f"{ratio:.2f}× clone",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.axhline(values[0], color="gray", ls=":", lw=1)
    ax.set_ylabel("GB/s of tensor (median)")
    tensor = tp.get("tensor", {})
    ax.set_title(
        f"Throughput on {tp.get('device_name', tp.get('device', '?'))}: {tensor.get('bytes', 0) / 2**20:.1f} MiB "
        f"{tensor.get('dtype', '')}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# -- Markdown to self-contained HTML --------------------------------------------------------------

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #1b1b1b; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .2em; }
h2 { font-size: 1.3em; margin-top: 1.6em; border-bottom: 1px solid #eee; }
h3 { font-size: 1.1em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #d0d0d0; padding: .3em .6em; vertical-align: top; }
th { background: #f3f3f3; }
td.r, th.r { text-align: right; }
code { background: #f4f4f4; padding: 0 .2em; border-radius: 3px; }
pre { background: #f4f4f4; padding: .8em; overflow-x: auto; }
figure { margin: 1em 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: .85em; color: #555; }
"""

_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_IMAGE = re.compile(r"^!\[([^\]]*)\]\(([^)\s]+)\)$")
_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")


def _inline(text: str) -> str:
    """Escaped HTML of one line of Markdown: `code`, **bold**, [links](target)."""
    out: List[str] = []
    parts = re.split(r"(`[^`]+`)", text)
    for part in parts:
        if len(part) >= 2 and part.startswith("`") and part.endswith("`"):
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        escaped = html.escape(part, quote=False)
        escaped = _BOLD.sub(r"<strong>\1</strong>", escaped)
        escaped = _LINK.sub(lambda m: f'<a href="{html.escape(m.group(2))}">{m.group(1)}</a>', escaped)
        out.append(escaped)
    return "".join(out)


def _cells(line: str) -> List[str]:
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in _CELL_SPLIT.split(inner)]


def _html_table(lines: Sequence[str]) -> str:
    header = _cells(lines[0])
    rule = _cells(lines[1]) if len(lines) > 1 else []
    right = [c.endswith(":") for c in rule] + [False] * len(header)
    out = ["<table>", "<thead><tr>"]
    out += [f'<th class="{"r" if right[i] else "l"}">{_inline(c)}</th>' for i, c in enumerate(header)]
    out.append("</tr></thead><tbody>")
    for line in lines[2:]:
        cells = _cells(line)
        tds = "".join(f'<td class="{"r" if right[i] else "l"}">{_inline(c)}</td>' for i, c in enumerate(cells))
        out.append(f"<tr>{tds}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


def _figure(alt: str, src: str, base: pathlib.Path) -> str:
    """An <img> with the file embedded as a data URI; never a reference to anything outside."""
    path = base / src
    types = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
    kind = types.get(path.suffix.lower())
    if "://" in src or kind is None or not path.is_file():
        return f"<p><em>[figure not available: {html.escape(alt)} ({html.escape(src)})]</em></p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (
        f'<figure><img alt="{html.escape(alt)}" src="data:{kind};base64,{data}">'
        f"<figcaption>{html.escape(alt)}</figcaption></figure>"
    )


def markdown_to_html(text: str, base_dir: str | pathlib.Path, title: str = "featperm demo") -> str:
    """A self-contained HTML page of the Markdown subset the reports write: headings, paragraphs,
    pipe tables (``---:`` right-aligns), images alone on a line (embedded from ``base_dir`` as
    data URIs), ``-`` lists, fenced code blocks, and inline code, bold and links."""
    base = pathlib.Path(base_dir)
    body: List[str] = []
    lines = text.splitlines()
    i = 0
    paragraph: List[str] = []

    def flush() -> None:
        if paragraph:
            body.append("<p>" + " ".join(_inline(p) for p in paragraph) + "</p>")
            paragraph.clear()

    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            block: List[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith("```"):
                block.append(lines[i])
                i += 1
            body.append("<pre><code>" + html.escape("\n".join(block)) + "</code></pre>")
            i += 1
            continue
        if not stripped:
            flush()
            i += 1
            continue
        heading = _HEADING.match(stripped)
        if heading:
            flush()
            level = len(heading.group(1))
            body.append(f"<h{level}>{_inline(heading.group(2))}</h{level}>")
            i += 1
            continue
        image = _IMAGE.match(stripped)
        if image:
            flush()
            body.append(_figure(image.group(1), image.group(2), base))
            i += 1
            continue
        if stripped.startswith("|"):
            flush()
            rows: List[str] = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(lines[i])
                i += 1
            body.append(_html_table(rows))
            continue
        if stripped.startswith("- "):
            flush()
            items: List[str] = []
            while i < len(lines) and lines[i].strip().startswith("- "):
                items.append(f"<li>{_inline(lines[i].strip()[2:])}</li>")
                i += 1
            body.append("<ul>\n" + "\n".join(items) + "\n</ul>")
            continue
        paragraph.append(stripped)
        i += 1
    flush()
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


# -- the whole report ---------------------------------------------------------------------------


def render_demo_report(out_dir: str | pathlib.Path) -> List[pathlib.Path]:
    """Render a demo folder from its stages' ``results.json`` files, running nothing: each
    stage's own ``results.md`` and figures (``feature_attacks/{attributes,key_recovery,
    reconstructions}.png``, ``model_protection/accuracy_vs_budget.png``,
    ``throughput/throughput.png``), then ``report.md`` and the self-contained ``report.html``
    in ``out_dir``. Returns the paths written; raises FileNotFoundError when no stage has
    results."""
    out = pathlib.Path(out_dir)
    stages = load_stage_results(out)
    if all(results is None for results in stages.values()):
        raise FileNotFoundError(
            f"featperm demo: no results in {out} (none of {', '.join(s + '/results.json' for s in STAGES)}); "
            "run featperm demo first"
        )
    written: List[pathlib.Path] = []
    if stages["feature_attacks"] is not None:
        written += render_feature_attacks(out / "feature_attacks")
    if stages["model_protection"] is not None:
        written += render_model_protection(out / "model_protection")
    throughput = stages["throughput"]
    if throughput is not None and "skipped" not in throughput:
        figure = out / "throughput" / "throughput.png"
        _throughput_figure(throughput, figure)
        written.append(figure)
    text = demo_markdown(stages)
    (out / "report.md").write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_to_html(text, out), encoding="utf-8")
    return written + [out / "report.md", out / "report.html"]
