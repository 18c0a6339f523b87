"""results/<grid>/summary.md (the paper's claims, in words with numbers) and
results/<grid>/metrics/ (small JSON files for ``dvc metrics show``: ``claims.json`` and
one ``navigation_<regularizer>_t<target %>.json`` per navigation table row), from the
tables; the language and sparse-inference tables add measured numbers (no verdict).

Verdict rules (docs/claims.md; stated in the summary itself; roles, targets and
thresholds are the config's ``claims`` section, validated with the grid):
  Navigation (``claims.navigation``):
  (1) at ``target``: every ``geometric`` regularizer (torus_dog, klein_dog) has a mean
      error at most ``well_below`` x the mean error of every ``control`` (none, l1):
      REPLICATED (the paper's effect size). Short of that, if in every seed every
      geometric error is below every control error (paired: runs of one seed share the
      initialisation and the evaluation trajectories; >= 2 seeds): "replicated in
      direction, not in size".
  (2) at ``high_target``: every regularizer's mean error is above ``fail_cm``.
  (3) lottery tickets at ``target``: the geometric masks retrain (mean lottery error) to
      at most ``well_below`` x the ``permuted`` control's lottery error.
  Adding problem (``claims.adding``): at ``target``, geometric runs stable above
  ``above`` and below the baseline, every control unstable in some seed, and geometric
  mean test MSE <= ``well_below`` x every control's (table_adding.py measures stability).
A claim whose regularizers or target are not in the grid is "not tested".
"""

import json
import math
from pathlib import Path

import pandas as pd
from tables_io import MISSING, PAPER_KEY, snakemake_job


def _means(table: pd.DataFrame, column: str, target: float) -> dict[str, float]:
    rows = table[(table["target"] - target).abs() < 1e-9]
    return {r: v for r, v in zip(rows["regularizer"], rows[column], strict=True) if not math.isnan(v)}


def _untested(table: pd.DataFrame, target: float, names: list[str], means: dict[str, float], need: str) -> str:
    """Why a claim is not tested: the regularizers of ``names`` in the grid at ``target``
    without a completed run (every run diverged), or else what the grid lacks (``need``)."""
    rows = table[(table["target"] - target).abs() < 1e-9]
    diverged = [r for r in names if r in set(rows["regularizer"]) and r not in means]
    if diverged:
        return f"no completed run of {diverged} at {100 * target:g} % (every run diverged): nothing to compare."
    return need


DIRECTION = "direction"
"""Verdict value: the ordering holds beyond seed noise, but the effect is smaller."""


def _verdict(ok: bool | str | None) -> str:
    return {
        True: "REPLICATED",
        DIRECTION: "replicated in direction, not in size",
        False: "NOT replicated",
        None: "not tested",
    }[ok]


def _below_in_every_seed(runs: pd.DataFrame, low: list[str], high: list[str], target: float) -> bool:
    """Paired test: for each of >= 2 seeds, every ``low`` error < every ``high`` error."""
    done = runs[
        (runs["phase"] == "sparse") & (runs["status"] == "completed") & ((runs["target"] - target).abs() < 1e-9)
    ]
    errors = done.pivot_table(index="seed", columns="regularizer", values="error_cm")
    names = [*low, *high]
    if any(r not in errors for r in names):
        return False
    errors = errors[names].dropna()
    if len(errors) < 2:
        return False
    return bool((errors[low].max(axis=1) < errors[high].min(axis=1)).all())


def seed_margins(runs: pd.DataFrame, low: list[str], high: list[str], target: float) -> str:
    """Per seed, every ``low`` error over every ``high`` error at ``target`` (sparse phase,
    completed runs), e.g. ``s0: torus_dog/none 0.84, ...``; ``n/a`` when no seed has both."""
    done = runs[
        (runs["phase"] == "sparse") & (runs["status"] == "completed") & ((runs["target"] - target).abs() < 1e-9)
    ]
    errors = done.pivot_table(index="seed", columns="regularizer", values="error_cm")
    parts = []
    for seed, row in errors.iterrows():
        ratios = [f"{g}/{c} {row[g] / row[c]:.2f}" for g in low for c in high if g in row and c in row]
        ratios = [r for r in ratios if "nan" not in r]
        if ratios:
            parts.append(f"s{int(seed)}: " + ", ".join(ratios))
    return "; ".join(parts) or "n/a"


def claim_geometry(error: pd.DataFrame, runs: pd.DataFrame, claims: dict) -> tuple[bool | str | None, str]:
    """Claim (1): at 90 % the geometric errors are well below the controls'."""
    target = claims["target"]
    means = _means(error, "error_cm_mean", target)
    geo = {r: means[r] for r in claims["geometric"] if r in means}
    ctl = {r: means[r] for r in claims["controls"] if r in means}
    if not geo or not ctl:
        need = f"needs target {target:g} with one of {claims['geometric']} and one of {claims['controls']} in the grid."
        return None, _untested(error, target, [*claims["geometric"], *claims["controls"]], means, need)
    well_below = claims["well_below"]
    ok: bool | str = max(geo.values()) <= well_below * min(ctl.values())
    if not ok and _below_in_every_seed(runs, list(geo), list(ctl), target):
        ok = DIRECTION
    stds = _means(error, "error_cm_std", target)
    spread = ", ".join(f"{r} +- {stds[r]:.1f}" for r in [*geo, *ctl] if r in stds)
    return ok, (
        f"mean error {_fmt(geo)} vs controls {_fmt(ctl)} (std over seeds: {spread or 'n/a'}); "
        f"margin per seed (geometric / control error): {seed_margins(runs, list(geo), list(ctl), target)}; "
        f"rule: REPLICATED if every geometric error <= {well_below} x every control error "
        "(the paper's size); in direction if, in every seed, every geometric error is "
        "below every control error."
    )


def claim_high_sparsity(error: pd.DataFrame, claims: dict) -> tuple[bool | None, str]:
    """Claim (2): at ``high_target`` (98 %) every regularizer fails."""
    high = claims["high_target"]
    means = _means(error, "error_cm_mean", high)
    if not means:
        names = list(dict.fromkeys(error["regularizer"]))
        return None, _untested(error, high, names, means, f"needs target {high:g} in the grid.")
    ok = min(means.values()) > claims["fail_cm"]
    best = min(means, key=means.get)
    return ok, (
        f"lowest mean error at {100 * high:g} %: {best} {means[best]:.1f} cm (all: {_fmt(means)}); "
        f"rule: every error > {claims['fail_cm']:g} cm."
    )


def claim_lottery(lottery: pd.DataFrame, claims: dict) -> tuple[bool | None, str]:
    """Claim (3): geometric masks retrain well, permuted masks much less so."""
    target = claims["target"]
    means = _means(lottery, "lottery_error_cm_mean", target)
    sparse = _means(lottery, "sparse_error_cm_mean", target)
    geo = {r: means[r] for r in claims["geometric"] if r in means}
    permuted = claims["permuted"]
    if not geo or permuted not in means:
        need = (
            f"needs lottery_ticket: true, target {target:g}, {permuted} and one of {claims['geometric']} in the grid."
        )
        return None, _untested(lottery, target, [*claims["geometric"], permuted], means, need)
    ok = max(geo.values()) <= claims["well_below"] * means[permuted]
    pairs = ", ".join(f"{r} {sparse.get(r, float('nan')):.1f} -> {means[r]:.1f} cm" for r in [*geo, permuted])
    return ok, (
        f"sparse -> retrained error: {pairs}; rule: every geometric lottery error <= "
        f"{claims['well_below']} x the permuted one."
    )


def _fmt(values: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.1f} cm" for k, v in values.items())


def scale_note(runs: pd.DataFrame) -> str:
    """The scale the numbers were measured at (from the runs' configs)."""
    first = runs.iloc[0]
    done = runs[runs["status"] == "completed"]
    training = runs.drop_duplicates("run_id")["wall_time_s"].sum() / 60
    cpus = ", ".join(sorted(set(runs["cpu_model"].dropna()))) if "cpu_model" in runs else ""
    return (
        f"{runs['run_id'].nunique()} runs, Ng = {first['n_hidden']}, "
        f"{first['epochs']} epochs x {first['steps_per_epoch']} steps "
        f"(paper: Ng = 4096, 30 x 1000), pruned {pruned(runs)} (paper: every matrix, global), "
        f"seeds {sorted(runs['seed'].unique().tolist())}, "
        f"device {first['device']}{f' ({cpus})' if cpus else ''}; {len(done)} of {len(runs)} run phases "
        f"completed; {wall_clock(runs)}{training:.1f} min of training summed over runs."
    )


def pruned(runs: pd.DataFrame) -> str:
    """The runs' pruned matrices and scope (``W_hh per_tensor``; several joined by ``or``)."""
    return " or ".join(sorted(set(runs["pruned"].dropna())))


def wall_clock(runs: pd.DataFrame) -> str:
    """``wall time X min from the first run's start to the last run's finish (HH:MM to
    HH:MM UTC, date), `` (metrics.json ``started_at`` / ``finished_at``; the span holds
    whatever else the grid ran meanwhile); empty when a run lacks them. A grid resumed or
    extended later spans the pause as well."""
    runs = runs[runs["status"] != MISSING]  # placeholder rows of cells without a run
    times = ["started_at", "finished_at"]
    if runs.empty or not set(times) <= set(runs) or runs[times].isna().any().any():
        return ""
    start, end = pd.to_datetime(runs["started_at"]).min(), pd.to_datetime(runs["finished_at"]).max()
    minutes = (end - start).total_seconds() / 60
    return (
        f"wall time {minutes:.1f} min from the first run's start to the last run's finish "
        f"({start:%H:%M} to {end:%H:%M} UTC, {end:%Y-%m-%d}), "
    )


def build(error: pd.DataFrame, lottery: pd.DataFrame, runs: pd.DataFrame, roles: dict) -> tuple[str, dict]:
    """(navigation summary Markdown, metrics dict); ``roles``: the config's
    ``claims.navigation`` section."""
    claims = {
        "claim1_geometry_at_90": claim_geometry(error, runs, roles),
        "claim2_all_fail_at_98": claim_high_sparsity(error, roles),
        "claim3_lottery_tickets": claim_lottery(lottery, roles),
    }
    target, high = 100 * roles["target"], 100 * roles["high_target"]
    titles = {
        "claim1_geometry_at_90": f"(1) At {target:g} % sparsity only suitable geometry (torus, Klein "
        "bottle DoG) keeps the error low, well below no regularizer and L1",
        "claim2_all_fail_at_98": f"(2) At {high:g} % sparsity every regularizer fails",
        "claim3_lottery_tickets": "(3) Geometric masks are lottery tickets, permuted ones much less so",
    }
    lines = [
        "# Navigation replication summary",
        "",
        f"Scale: {scale_note(runs)}",
        "Numbers are means over seeds; the full tables are navigation_error.md and navigation_lottery.md.",
        "",
    ]
    for key, (ok, text) in claims.items():
        lines += [f"- {titles[key]}: **{_verdict(ok)}**. {text}"]
    lines += ["", "A verdict at a scale below the paper's is evidence about this scale only."]
    metrics: dict = {"claims": {key: ok for key, (ok, _) in claims.items()}}
    for row in error.itertuples(index=False):
        metrics[f"navigation_{row.regularizer}_t{round(100 * row.target)}"] = {
            "error_cm_mean": _num(row.error_cm_mean),
            "error_cm_std": _num(row.error_cm_std),
            "paper_error_cm_mean": _num(row.paper_error_cm_mean),
            "W_hh_sparsity": _num(row.W_hh_sparsity_mean),
            "n_diverged": int(row.n_diverged),
        }
    return "\n".join(lines) + "\n", metrics


def claim_adding(table: pd.DataFrame, claims: dict) -> tuple[bool | str | None, str]:
    """The adding problem's claim (docs/claims.md): at ``target`` the geometric
    regularizers stay stable above ``above`` with high fidelity where the controls
    destabilise. ``table``: the tidy adding table (table_adding.py)."""
    target = claims["target"]
    rows = table[(table["target"] - target).abs() < 1e-9].set_index("regularizer")
    geo = [r for r in claims["geometric"] if r in rows.index and rows.at[r, "n_runs"] > 0]
    ctl = [r for r in claims["controls"] if r in rows.index and rows.at[r, "n_runs"] > 0]
    if not geo or not ctl:
        return None, (
            f"needs target {target:g} with one of {claims['geometric']} and one of {claims['controls']} in the grid."
        )

    def mean(r: str) -> float:  # a cell whose runs all diverged counts as infinitely bad
        value = rows.at[r, "test_mse_mean"]
        return math.inf if pd.isna(value) else float(value)

    def unstable(r: str) -> int:
        return 0 if pd.isna(rows.at[r, "n_unstable"]) else int(rows.at[r, "n_unstable"])

    stable = all(unstable(r) == 0 and rows.at[r, "n_below_baseline"] == rows.at[r, "n_runs"] for r in geo)
    controls_unstable = all(unstable(r) >= 1 for r in ctl)
    worst_geo, best_ctl = max(mean(r) for r in geo), min(mean(r) for r in ctl)
    ok: bool | str = stable and controls_unstable and worst_geo <= claims["well_below"] * best_ctl
    all_below = all(rows.at[r, "n_below_baseline"] == rows.at[r, "n_runs"] for r in geo)
    if not ok and worst_geo < best_ctl and all_below:
        ok = DIRECTION
    cells = ", ".join(
        f"{r} {mean(r):.4f} (unstable {unstable(r)}/{int(rows.at[r, 'n_runs'])}, "
        f"below baseline {int(rows.at[r, 'n_below_baseline'])}/{int(rows.at[r, 'n_runs'])})"
        for r in [*geo, *ctl]
    )
    return ok, (
        f"mean test MSE at {100 * target:g} %: {cells}; rule: REPLICATED if no geometric run is "
        f"unstable above {100 * claims['above']:g} % (validation MSE > {claims['rise']:g} x its best "
        "before, or diverged) and each is below the baseline 0.167, every control has an unstable run, "
        f"and every geometric mean <= {claims['well_below']} x every control mean; in direction if every "
        "geometric mean is below every control mean and every geometric run below the baseline."
    )


def task_sections(language: pd.DataFrame | None, adding: pd.DataFrame | None, adding_roles: dict) -> list[str]:
    """Summary lines of the language table (measured numbers only: the paper states no
    numbers or verdict rule for it) and of the adding table with its claim's verdict."""
    lines: list[str] = []
    if language is not None:
        corpora = sorted(set(language["data"]))
        lines += ["", f"## Language modelling ({', '.join(corpora)})", ""]
        if any("FIXTURE" in c for c in corpora):
            lines += ["FIXTURE corpus (built from the WikiText-2 valid and test files): not WikiText-2 results.", ""]
        lines += ["Measured numbers, no verdict; tables/language_scores.md.", ""]
        for row in language.itertuples(index=False):
            lines.append(
                f"- {row.regularizer} at {100 * row.target:g} %: test loss "
                f"{_fmt_num(row.test_loss_mean, 3)} nats/token, perplexity {_fmt_num(row.test_ppl_mean, 1)}, "
                f"accuracy {_fmt_num(row.test_accuracy_mean, 3)}, diverged "
                f"{int(row.n_diverged)}/{int(row.n_runs)}"
            )
    if adding is not None:
        ok, text = claim_adding(adding, adding_roles)
        lines += [
            "",
            "## Adding problem",
            "",
            f"- Moduli-regularized RNNs stay stable with high fidelity above {100 * adding_roles['above']:g} % "
            f"sparsity where unregularized and plain-L1 ones destabilise: **{_verdict(ok)}**. {text}",
            "",
            "Per cell (baseline: always 1, MSE 0.167; tables/adding_mse.md):",
            "",
        ]
        for row in adding.itertuples(index=False):
            lines.append(
                f"- {row.regularizer} at {100 * row.target:g} %: test MSE "
                f"{_fmt_num(row.test_mse_mean, 4)} ({row.test_mse_per_seed}), below baseline "
                f"{int(row.n_below_baseline)}/{int(row.n_runs)}, unstable "
                f"{'-' if pd.isna(row.n_unstable) else int(row.n_unstable)}/{int(row.n_runs)}, "
                f"largest rise {_fmt_num(row.rise_max, 1)}x, diverged {int(row.n_diverged)}/{int(row.n_runs)}"
            )
    return lines


def inference_section(inference: pd.DataFrame) -> list[str]:
    """Summary lines of the sparse-inference table (measured CPU timings; no verdict, and
    kept out of results/metrics.json, which stays deterministic)."""
    done = inference.dropna(subset=["speedup_mean"])
    if done.empty:
        return []
    small, large = int(done["batch"].min()), int(done["batch"].max())
    lines = [
        "",
        "## Sparse inference (CPU, trained models)",
        "",
        f"Speed-up of the exported CSR model over the dense one (one step at batch {small}; "
        f"a whole sequence at batch {large}), the 32 x 32 block density of W_hh in training -> "
        "geometry order, and the largest relative logit deviation; "
        "tables/navigation_inference.md.",
        "",
    ]
    for (regularizer, target), rows in done.groupby(PAPER_KEY, sort=False):
        csr = rows[rows["format"] == "csr"].set_index(["kind", "batch"])["speedup_mean"]
        first = rows.iloc[0]
        geometry = first["block_density_32_geometry_mean"]
        lines.append(
            f"- {regularizer} at {100 * target:g} % (W_hh {100 * first['W_hh_sparsity_mean']:.1f} % sparse): "
            f"CSR {csr.get(('step', small), float('nan')):.2f}x per step, "
            f"{csr.get(('sequence', large), float('nan')):.2f}x per sequence; blocks "
            f"{first['block_density_32_none_mean']:.3f} -> "
            f"{'-' if math.isnan(geometry) else f'{geometry:.3f}'}; "
            f"max rel. error {rows['max_rel_error'].max():.1e}"
        )
    return lines


def _fmt_num(value: float, digits: int) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}"


def _num(value: float) -> float | None:
    return None if value is None or math.isnan(value) else round(float(value), 4)


smk = snakemake_job(globals())
if smk is not None:
    roles = smk.params.claims
    text, metrics = "# Replication summary\n", {}
    if smk.input.error:
        text, metrics = build(
            pd.read_csv(smk.input.error[0]),
            pd.read_csv(smk.input.lottery[0]),
            pd.read_csv(smk.input.runs[0]),
            roles["navigation"],
        )
    adding = pd.read_csv(smk.input.adding[0]) if smk.input.adding else None
    extra = task_sections(pd.read_csv(smk.input.language[0]) if smk.input.language else None, adding, roles["adding"])
    if smk.input.inference:
        extra += inference_section(pd.read_csv(smk.input.inference[0]))
    if adding is not None:
        metrics.setdefault("claims", {})["adding_stable_above_90"] = claim_adding(adding, roles["adding"])[0]
    if extra:
        text += "\n".join(extra) + "\n"
    Path(smk.output.summary).write_text(text.lstrip("\n"))
    # One small file per row of `dvc metrics show`: the claims, then one per regularizer
    # and target (a few columns each, instead of one row of every number).
    folder = Path(smk.output.metrics[0]).parent
    folder.mkdir(parents=True, exist_ok=True)
    for name, values in metrics.items():
        (folder / f"{name}.json").write_text(json.dumps(values, indent=2) + "\n")
    missing = [path for path in smk.output.metrics if not Path(path).is_file()]
    if missing:
        raise ValueError(f"metrics files not written (grid and error table disagree): {missing}")
