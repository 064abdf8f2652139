"""The adaptive-overfitting guard (harness/ladder.py): the parameter-free Ladder against a reference
written here from Blum & Hardt's pseudo-code, its properties on random and adversarial streams,
the boosting attack, the board settings, the store query, `harness leaderboard --ladder` and the
app page."""

from __future__ import annotations

import math
import re
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.stats
from cli_helpers import run_cli
from factories import make_submission
from test_app import APP, HOSTILE, active_content, chart_strings, markdown_sources, table, texts

from harness.errors import HarnessError
from harness.ladder import (
    LadderHistory,
    LadderSettings,
    decimal_step,
    ladder,
    ladder_from_bootstrap,
    ladder_from_losses,
    load_settings,
    release,
)
from harness.schema import MetricValue, ModelCard, RunResult, Submission
from harness.store import open_store
from harness.trust import TIERS, Tier

PAGE = "views/ladder.py"

# --------------------------------------------------------------------------- references, written from the paper


def reference_round(value: float, threshold: float) -> float:
    """value rounded to the decimal place of threshold, half to even, in exact decimal arithmetic."""
    if not threshold > 0:
        return value
    place = Decimal(1).scaleb(Decimal(threshold).adjusted())  # 10^floor(log10(threshold)), exactly
    return float(Decimal(value).quantize(place, rounding=ROUND_HALF_EVEN))


def sample_std(xs: list[float]) -> float:
    mean = sum(xs) / len(xs)
    return math.sqrt(sum((x - mean) ** 2 for x in xs) / (len(xs) - 1))


def reference_losses_ladder(losses: list[list[float]]) -> tuple[list[bool], list[float], list[float]]:
    """Blum & Hardt's parameter-free Ladder (Algorithm 2), loop by loop: R_0 = inf, the initial loss
    vector is 0; s = std(l_t - l_prev); if R_S(f_t) < R_{t-1} - s / sqrt(n), release R_S(f_t) rounded
    and keep l_t, else keep R and l_prev. Rounding to the decimal place of s and the extra condition
    "better than the previous best's own loss" are the harness's documented choices."""
    n = len(losses[0])
    shown, previous, best_loss = math.inf, [0.0] * n, None
    accepted: list[bool] = []
    released: list[float] = []
    thresholds: list[float] = []
    for loss in losses:
        mean = sum(loss) / n
        s = sample_std([a - b for a, b in zip(loss, previous, strict=True)]) / math.sqrt(n)
        thresholds.append(s)
        ok = mean < shown - s and (best_loss is None or mean < best_loss)
        if ok:
            shown, previous, best_loss = reference_round(mean, s), loss, mean
        accepted.append(ok)
        released.append(shown if best_loss is not None else math.nan)
    return accepted, released, thresholds


def reference_bootstrap_ladder(
    values: list[float], boots: list[list[float] | None], keys: list[object], ses: list[float], higher: bool
) -> tuple[list[bool], list[float], list[str], list[float]]:
    """The same loop on (value, bootstrap distribution) pairs: paired std of the difference when both
    have a distribution with the same key and length, else sqrt of the summed squared standard errors."""
    sign = -1.0 if higher else 1.0

    def own(i: int) -> float:
        boot = boots[i]
        return sample_std(boot) if boot is not None else ses[i]

    shown, best = math.inf, None
    accepted, released, rules, thresholds = [], [], [], []
    for t, value in enumerate(values):
        if best is None:
            s, rule = (own(t), "first") if not math.isnan(own(t)) else (0.0, "value")
        else:
            bt, bb = boots[t], boots[best]
            if bt is not None and bb is not None and len(bt) == len(bb) and keys[t] == keys[best]:
                s, rule = sample_std([a - b for a, b in zip(bt, bb, strict=True)]), "paired"
            else:
                known = [own(i) ** 2 for i in (t, best) if not math.isnan(own(i))]
                s, rule = (math.sqrt(sum(known)), "unpaired") if known else (0.0, "value")
        ok = sign * value < shown - s and (best is None or sign * value < sign * values[best])
        if ok:
            shown, best = sign * reference_round(value, s), t
        accepted.append(ok)
        released.append(sign * shown if best is not None else math.nan)
        rules.append(rule)
        thresholds.append(s)
    return accepted, released, rules, thresholds


def random_losses(rng: np.random.Generator, k: int, n: int) -> np.ndarray:
    """Per-sample losses of k submissions: 0/1 losses with drifting error rates, or continuous ones."""
    if rng.random() < 0.5:
        rates = np.clip(0.5 + np.cumsum(rng.normal(-0.01, 0.03, k)), 0.02, 0.98)
        return (rng.random((k, n)) < rates[:, None]).astype(np.float64)
    return rng.exponential(1.0, (k, n)) * rng.uniform(0.5, 1.5, (k, 1))


def same(a: Any, b: Any) -> bool:
    return bool(np.array_equal(np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64), equal_nan=True))


# --------------------------------------------------------------------------- the mechanism


def test_rounding_matches_exact_decimal_rounding_on_random_values() -> None:
    rng = np.random.default_rng(0)
    for _ in range(5000):
        value = float(rng.normal(0, 10.0 ** rng.integers(-4, 4)))
        threshold = float(10.0 ** rng.uniform(-7, 3))
        assert release(value, threshold) == reference_round(value, threshold), (value, threshold)
        assert 10.0 ** decimal_step(threshold) <= threshold < 10.0 ** (decimal_step(threshold) + 1)
        assert abs(release(value, threshold) - value) <= threshold / 2 * (1 + 1e-9)
    assert release(0.84371, 0.0158) == 0.84 and release(0.125, 0.01) == 0.12  # half to even
    assert release(123.4, 3.0) == 123.0 and release(0.3, 0.0) == 0.3 and release(0.3, math.nan) == 0.3
    with pytest.raises(ValueError):
        decimal_step(0.0)


def test_ladder_on_losses_equals_the_papers_pseudo_code_on_random_streams() -> None:
    rng = np.random.default_rng(1)
    moved = 0
    for _ in range(300):
        losses = random_losses(rng, int(rng.integers(1, 40)), int(rng.integers(2, 120)))
        history = ladder_from_losses(losses)
        accepted, released, thresholds = reference_losses_ladder(losses.tolist())
        assert history.accepted.tolist() == accepted
        assert same(history.displayed, released)
        np.testing.assert_allclose(history.threshold, thresholds, rtol=1e-9, atol=1e-15)
        moved += sum(accepted) - 1
    assert moved > 100  # the streams exercise accepted and rejected submissions alike


def test_ladder_on_bootstraps_equals_the_reference_with_pairing_and_fallbacks() -> None:
    rng = np.random.default_rng(2)
    rules_seen: set[str] = set()
    for _ in range(300):
        k, b = int(rng.integers(1, 30)), int(rng.integers(2, 60))
        higher = bool(rng.random() < 0.5)
        values = (rng.normal(0.7, 0.05, k) + np.cumsum(rng.normal(0.0, 0.01, k))).tolist()
        common = rng.normal(0, 0.02, b)
        boots: list[list[float] | None] = []
        keys: list[object] = []
        ses: list[float] = []
        for value in values:
            kind = rng.integers(0, 5)
            boot = value + common + rng.normal(0, 0.005, b) if kind < 3 else None
            boots.append(None if boot is None else boot.tolist())
            keys.append(("seed", int(kind == 2)))  # kind 2: another bootstrap seed, does not pair with kind 0/1
            ses.append(float(rng.uniform(0.001, 0.03)) if kind != 4 else math.nan)  # kind 4: no interval at all
        history = ladder_from_bootstrap(
            values,
            [None if x is None else np.asarray(x) for x in boots],
            higher_is_better=higher,
            pair_keys=keys,
            stderrs=ses,
        )
        accepted, released, rules, thresholds = reference_bootstrap_ladder(values, boots, keys, ses, higher)
        assert history.accepted.tolist() == accepted
        assert same(history.displayed, released)
        assert list(history.rule) == rules
        np.testing.assert_allclose(history.threshold, thresholds, rtol=1e-9, atol=1e-15)
        rules_seen |= set(rules)
    assert rules_seen == {"first", "paired", "unpaired", "value"}


def random_history(rng: np.random.Generator, higher: bool) -> LadderHistory:
    k, b = int(rng.integers(1, 60)), 50
    values = 0.5 + rng.normal(0, 0.05, k) + (1 if higher else -1) * np.cumsum(rng.exponential(0.005, k))
    common = rng.normal(0, 0.02, b)
    boots = [v + common + rng.normal(0, rng.uniform(0.001, 0.02), b) for v in values]
    values[rng.random(k) < 0.05] = np.nan  # a few submissions without a value
    return ladder_from_bootstrap(values, boots, higher_is_better=higher)


@pytest.mark.parametrize("higher", [True, False])
def test_the_shown_value_only_moves_the_right_way_and_is_the_rounded_value_of_the_best(higher: bool) -> None:
    rng = np.random.default_rng(3 + higher)
    sign = 1.0 if higher else -1.0
    for _ in range(300):
        history = random_history(rng, higher)
        shown = history.displayed[np.isfinite(history.displayed)]
        steps = np.diff(sign * shown)
        assert (steps >= 0).all()  # never the wrong way
        assert (
            (steps > 0) == history.accepted[np.isfinite(history.displayed)][1:]
        ).all()  # moves exactly when accepted
        for t in np.flatnonzero(history.best >= 0):
            b = history.best[t]
            assert history.displayed[t] == release(float(history.value[b]), float(history.threshold[b]))
            assert abs(history.displayed[t] - history.value[b]) <= history.threshold[b] / 2 + 1e-12
            assert sign * history.value[b] == np.nanmax(sign * history.value[: t + 1][history.accepted[: t + 1]])
        assert not history.accepted[~np.isfinite(history.value)].any()
        assert np.isnan(history.threshold[~np.isfinite(history.value)]).all()
        if np.isfinite(history.value).any():  # the shown submission is never better than the raw best
            assert sign * history.value[history.best[-1]] <= sign * history.raw_best


def test_higher_is_better_mirrors_lower_is_better() -> None:
    rng = np.random.default_rng(5)
    for _ in range(100):
        k = int(rng.integers(1, 20))
        values = rng.normal(0, 1, k)
        boots = [v + rng.normal(0, 0.1, 30) for v in values]
        up = ladder_from_bootstrap(values, boots, higher_is_better=True)
        down = ladder_from_bootstrap(-values, [-b for b in boots], higher_is_better=False)
        assert (up.accepted == down.accepted).all() and same(up.displayed, -down.displayed)
        assert same(up.threshold, down.threshold)


def test_resubmitting_the_best_never_moves_it() -> None:
    """Exact resubmissions (threshold 0), and submissions of the same value with other noise."""
    rng = np.random.default_rng(6)
    for higher in (True, False):
        boot = 0.61 + rng.normal(0, 0.015, 200)
        values = [0.61] * 50
        exact = ladder_from_bootstrap(values, [boot] * 50, higher_is_better=higher)
        assert exact.accepted.tolist() == [True] + [False] * 49
        assert exact.threshold[1:].tolist() == [0.0] * 49 and set(exact.rule[1:]) == {"paired"}
        noisy = ladder_from_bootstrap(
            values, [boot] + [0.61 + rng.normal(0, 0.015, 200) for _ in range(49)], higher_is_better=higher
        )
        assert noisy.accepted.sum() == 1 and len(set(noisy.displayed)) == 1
    losses = (rng.random((1, 300)) < 0.3).astype(float)
    assert ladder_from_losses(np.repeat(losses, 40, axis=0)).accepted.sum() == 1


def test_a_stream_of_lucky_resubmissions_stays_near_the_truth_while_the_raw_best_climbs() -> None:
    """2000 submissions of models whose true accuracy is 0.8, each scored with fresh noise: the raw
    best is the luckiest; the guarded best stays within a few standard errors of 0.8."""
    rng = np.random.default_rng(7)
    n = 1000
    labels_correct = rng.random((2000, n)) < 0.8
    history = ladder_from_losses(1.0 - labels_correct.astype(float))
    se = math.sqrt(0.8 * 0.2 / n)
    # The best of 2000 honest scores, and the Ladder's: below the 95% simultaneous (Bonferroni) bound for
    # the best of 2000 non-adaptive submissions plus half the release step (0.01 here), after a handful of moves.
    bound = 0.8 + scipy.stats.norm.isf(0.05 / 2000) * se + 0.005
    assert 1 - history.guarded_best < min(bound, 1 - history.raw_best)
    assert history.accepted.sum() <= 6


def test_a_genuinely_much_better_submission_moves_it() -> None:
    rng = np.random.default_rng(8)
    for higher in (True, False):
        sign = 1.0 if higher else -1.0
        common = rng.normal(0, 0.02, 500)
        values = [0.7] + [0.7 + sign * rng.normal(0, 0.001) for _ in range(20)] + [0.7 + sign * 0.05]
        boots = [v + common + rng.normal(0, 0.003, 500) for v in values]
        history = ladder_from_bootstrap(values, boots, higher_is_better=higher)
        assert history.accepted[-1] and history.displayed[-1] == round(values[-1], 2)
        assert sign * (history.displayed[-1] - history.displayed[-2]) > 0.04


def test_without_pairing_the_threshold_is_the_unpaired_standard_error() -> None:
    values = [0.80, 0.82, 0.86]
    history = ladder_from_bootstrap(values, [None, None, None], higher_is_better=True, stderrs=[0.01, 0.02, math.nan])
    assert list(history.rule) == ["first", "unpaired", "unpaired"]
    assert history.threshold[1] == pytest.approx(math.hypot(0.01, 0.02))  # 0.0224: 0.82 > 0.80 + 0.0224 fails
    assert history.accepted.tolist() == [True, False, True]
    assert history.threshold[2] == pytest.approx(0.01)  # the best's own standard error; the new one has none
    assert history.displayed.tolist() == [0.8, 0.8, 0.86]
    none = ladder_from_bootstrap([0.8, 0.81], [None, None], higher_is_better=True)
    assert list(none.rule) == ["value", "value"] and none.accepted.tolist() == [True, True]
    other_seed = ladder_from_bootstrap(
        [0.8, 0.9], [np.full(10, 0.8) + np.arange(10) / 100, np.full(10, 0.9)], higher_is_better=True, pair_keys=[0, 1]
    )
    assert other_seed.rule[1] == "unpaired"


def test_core_ladder_example_and_input_checks() -> None:
    history = ladder(
        [0.50, 0.495, 0.48], lambda t, b: (0.01, "first" if b is None else "paired"), higher_is_better=False
    )
    assert history.accepted.tolist() == [True, False, True] and history.displayed.tolist() == [0.5, 0.5, 0.48]
    assert history.best.tolist() == [0, 0, 2] and history.guarded_best == 0.48 and history.raw_best == 0.48
    empty = ladder([], lambda t, b: (0.0, "value"), higher_is_better=True)
    assert math.isnan(empty.guarded_best) and math.isnan(empty.raw_best)
    with pytest.raises(ValueError):
        ladder_from_losses(np.zeros((3, 1)))
    with pytest.raises(ValueError):
        ladder_from_bootstrap([0.1, 0.2], [None], higher_is_better=True)
    bad = ladder_from_bootstrap(
        [0.5, 0.6], [np.array([0.5, np.nan]), None], higher_is_better=True, stderrs=[0.01, 0.01]
    )
    assert list(bad.rule) == ["first", "unpaired"]  # a distribution with a NaN is no distribution


def test_the_boosting_attack_lifts_a_naive_board_but_not_the_ladder() -> None:
    """Blum & Hardt's attack, small: random label vectors (true accuracy 0.5), keep those scoring
    above 0.5 on the public labels, submit their majority vote."""
    rng = np.random.default_rng(9)
    n, k = 400, 200
    labels = rng.integers(0, 2, n)
    queries = rng.integers(0, 2, (k, n))
    public = (queries == labels).mean(axis=1)
    naive = (2 * queries[public > 0.5].sum(axis=0) >= (public > 0.5).sum()).astype(int)
    assert (naive == labels).mean() > 0.5 + 0.1  # the naive board is fooled
    first = ladder_from_losses((queries != labels).astype(float))
    combined = (2 * queries[first.accepted].sum(axis=0) >= first.accepted.sum()).astype(int)
    history = ladder_from_losses((np.vstack([queries, combined]) != labels).astype(float))
    assert (history.accepted[:k] == first.accepted).all()  # online: the past does not change
    assert 1 - history.guarded_best < 0.5 + 3.5 * math.sqrt(0.25 / n) + 0.005


# --------------------------------------------------------------------------- settings


def test_board_settings_default_on_and_per_board_switches(tmp_path: Path) -> None:
    assert LadderSettings().enabled("calib") and load_settings(None).enabled("x")
    assert load_settings(tmp_path / "absent.toml").enabled("x")  # no file: every board guarded
    file = tmp_path / "leaderboard.toml"
    file.write_text('[ladder]\noff = ["calib"]\n')
    settings = load_settings(file)
    assert not settings.enabled("calib") and settings.enabled("ood")
    file.write_text('[ladder]\ndefault = false\non = ["ood"]\n')
    settings = load_settings(file)
    assert settings.enabled("ood") and not settings.enabled("calib")
    file.write_text("# nothing about the ladder\n")
    assert load_settings(file).enabled("calib")
    bad = {
        "[ladder]\nof = []\n": "unknown key(s) in [ladder]: of",
        '[ladder]\ndefault = "yes"\n': "default must be true or false",
        '[ladder]\noff = "calib"\n': "off must be a list of task names",
        '[ladder]\non = ["a"]\noff = ["a"]\n': "both on and off in [ladder]: a",
        "ladder = 1\n": "[ladder] must be a table",
        "[ladder\n": "cannot read the board settings",
    }
    for text, message in bad.items():
        file.write_text(text)
        with pytest.raises(HarnessError, match=re.escape(message)):
            load_settings(file)
    with pytest.raises(HarnessError, match="does not exist"):
        load_settings(tmp_path / "absent.toml", required=True)


# --------------------------------------------------------------------------- the store


def submission(
    sid: str, model: str, value: float, boot: np.ndarray | None, *, seed: int = 0, limit: int | None = None,
    metric: str = "ece", family: str = "f", accuracy: float = 0.9,
) -> Submission:  # fmt: skip
    """One calib run of model "org/name": main metric `metric` (lower is better) with `boot` as its
    main_bootstrap, and an accuracy (higher is better) with an interval."""
    org, name = model.split("/")
    metrics = [
        MetricValue(name=metric, value=value, higher_is_better=False, ci_low=value - 0.02, ci_high=value + 0.02,
                    ci_method="bootstrap", n=100),
        MetricValue(name="accuracy", value=accuracy, higher_is_better=True, ci_low=accuracy - 0.03,
                    ci_high=accuracy + 0.03, ci_method="bootstrap", n=100),
    ]  # fmt: skip
    artifacts = {} if boot is None else {"main_bootstrap": {"seed": seed, "values": [float(v) for v in boot]}}
    run = (
        make_submission()
        .results[0]
        .model_copy(
            update={"run_id": f"{sid}-calib", "metrics": metrics, "main_metric": metric, "artifacts": artifacts}
        )
    )
    return make_submission(
        submission_id=sid,
        model=ModelCard(name=name, org=org, family=family, n_parameters=10),
        results=[RunResult.model_validate(run.model_dump())],
        sample_limit=limit,
    )


#: (submission id, model, ece, tier, seed of its bootstrap or None for no bootstrap, --limit)
STREAM: tuple[tuple[str, str, float, Tier, int | None, int | None], ...] = (
    ("s01", "acme/base", 0.100, "re-scored", 0, None),
    ("s02", "rival/one", 0.090, "re-scored", 0, None),
    ("s03", "acme/base-v2", 0.099, "re-scored", 0, None),  # within noise: not accepted
    ("s04", "acme/base-v3", 0.060, "verified", 0, None),  # much better: accepted
    ("s05", "acme/base-v4", 0.050, "re-scored", None, 10),  # --limit: never ranked, not a submission
    ("s06", "acme/imported", 0.010, "self-reported", 0, None),  # hidden by default
    ("s07", "rival/two", 0.089, "re-scored", 1, None),  # another seed: unpaired
    ("s08", "acme/base-v3", 0.0599, "re-scored", 0, None),  # resubmission of the best, within noise
    ("s09", "rival/two", 0.070, "re-scored", None, None),  # no bootstrap: unpaired
)
RESAMPLES = 200


def build_store(path: Path) -> Path:
    rng = np.random.default_rng(10)
    common = {0: rng.normal(0, 0.01, RESAMPLES), 1: rng.normal(0, 0.01, RESAMPLES)}
    subs, tiers = [], {}
    for sid, model, value, tier, seed, limit in STREAM:
        boot = None if seed is None else value + common[seed] + rng.normal(0, 0.002, RESAMPLES)
        subs.append(submission(sid, model, value, boot, seed=seed or 0, limit=limit, accuracy=0.9 - value))
        tiers[f"{sid}-calib"] = tier
    with open_store(path) as store:
        store.ingest([(s, None) for s in subs], tiers=lambda sub, run: tiers[run.run_id])
        store.record_verification("s04-calib", ok=True, sample_seed="x", samples=5, detail="", harness_version="0")
    return path


@pytest.fixture(scope="module")
def ladder_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_store(tmp_path_factory.mktemp("ladder") / "ladder.duckdb")


def expected(
    rows: list[tuple[str, str, float, Tier, int | None, int | None]], boots: dict[str, Any]
) -> tuple[list[bool], list[float], list[str], list[float]]:
    values = [value for _, _, value, _, _, _ in rows]
    keys: list[object] = [seed for *_, seed, _ in rows]
    ses = [0.04 / (2 * 1.959963984540054)] * len(rows)
    return reference_bootstrap_ladder(values, [boots[sid] for sid, *_ in rows], keys, ses, higher=False)


def test_the_store_lists_each_orgs_ranked_runs_in_ingest_order(ladder_store: Path) -> None:
    with open_store(ladder_store, read_only=True) as store:
        runs = store.ladder_runs("calib")
        every = store.ladder_runs("calib", tiers=TIERS)
        other = store.ladder_runs("calib", "accuracy")
        board = store.ladder_board("calib")
        assert store.ladder_board("no-such-task").orgs.empty
    assert runs["run_id"].tolist() == [f"{s}-calib" for s in ("s01", "s03", "s04", "s08", "s02", "s07", "s09")]
    assert (runs["org"] == runs["model_id"].str.split("/").str[0]).all()
    assert "s06-calib" in every["run_id"].tolist() and "s05-calib" not in every["run_id"].tolist()
    assert runs.set_index("run_id").loc["s04-calib", "tier"] == "verified"
    assert runs["boot_values"].map(lambda v: isinstance(v, list | np.ndarray)).tolist() == [True] * 6 + [False]
    assert not other["is_main"].any() and other["boot_values"].isna().all()  # bootstraps belong to the main metric
    # The board: one ladder per org, equal to the reference on the same submissions.
    boots = {
        sid: (list(v) if isinstance(v, list | np.ndarray) else None)
        for sid, v in zip(runs["run_id"].str[:3], runs["boot_values"], strict=True)
    }
    history = board.history.set_index("run_id")
    for org in ("acme", "rival"):
        rows = [r for r in STREAM if r[1].startswith(org + "/") and r[3] != "self-reported" and r[5] is None]
        accepted, released, rules, thresholds = expected(rows, boots)
        mine = history.loc[[f"{r[0]}-calib" for r in rows]]
        assert mine["accepted"].tolist() == accepted and same(mine["displayed"], released)
        assert mine["rule"].tolist() == rules
        np.testing.assert_allclose(mine["threshold"], thresholds, rtol=1e-9)
    assert not history.loc["s03-calib", "accepted"] and history.loc["s04-calib", "accepted"]
    assert history.loc["s07-calib", "rule"] == "unpaired" and history.loc["s09-calib", "rule"] == "unpaired"
    orgs = board.orgs.set_index("org")
    assert orgs.loc["acme", "guarded_best"] == 0.06 and orgs.loc["acme", "raw_best"] == 0.0599
    assert orgs.loc["acme", "shown_model"] == "acme/base-v3" and orgs.loc["acme", "submissions"] == 4
    assert board.orgs["org"].tolist() == ["acme", "rival"]  # best guarded value first (lower is better)
    assert board.metric == "ece" and board.higher_is_better is False


# --------------------------------------------------------------------------- the command line


def test_leaderboard_ladder_prints_guarded_and_raw_best_per_org(
    ladder_store: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result = run_cli(capsys, monkeypatch, "leaderboard", "--store", str(ladder_store), "--ladder")
    assert result.code == 0, result.err
    assert "calib - ece (lower is better) - guard on" in result.out
    lines = {line.split("│")[1].strip(): line for line in result.out.splitlines() if line.count("│") > 3}
    assert "0.06 " in lines["acme"] and "0.0599" in lines["acme"] and "acme/base-v3" in lines["acme"]
    (tmp_path / "leaderboard.toml").write_text('[ladder]\noff = ["calib"]\n')
    result = run_cli(capsys, monkeypatch, "leaderboard", "--store", str(ladder_store), "--ladder")
    assert "guard off" in result.out
    monkeypatch.setenv("HARNESS_LADDER_CONFIG", str(tmp_path / "missing.toml"))
    result = run_cli(capsys, monkeypatch, "leaderboard", "--store", str(ladder_store), "--ladder")
    assert result.code == 2 and "does not exist" in result.err


# --------------------------------------------------------------------------- the app page


def render(store: Path, monkeypatch: pytest.MonkeyPatch, **params: Any) -> Any:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("HARNESS_STORE", str(store))
    app = AppTest.from_file(str(APP), default_timeout=120)
    app.query_params.update(params)
    app.switch_page(PAGE)
    app.run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_the_page_shows_guarded_and_raw_best_per_org_and_the_history(
    ladder_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no leaderboard.toml here: every board guarded
    app = render(ladder_store, monkeypatch, task="calib", org="rival")
    assert not app.error and app.title[0].value == "Adaptive-overfitting guard"
    assert "Blum & Hardt" in app.caption[0].value and "ICML 2015" in app.caption[0].value
    shown = table(app, "guarded best")
    assert shown["org"].tolist() == ["acme", "rival"]
    assert shown["guarded best"].iloc[0] == 0.06 and shown["raw best"].iloc[0] == 0.0599
    assert (shown["public board"] == shown["guarded best"]).all()
    assert "The guard is **on** for this board" in texts(app)
    assert app.selectbox(key="org").value == "rival"  # deep link
    history = table(app, "threshold")
    assert history["model"].tolist() == ["rival/one", "rival/two", "rival/two"]  # model ids: buttons to their pages
    assert history["rule"].tolist() == ["first", "unpaired", "unpaired"]
    assert len(app.download_button) == 2 and len(app.get("plotly_chart")) == 1
    assert any("How the guard works" in e.label for e in app.expander)
    # Switched off for this board in leaderboard.toml: the public board shows raw values.
    (tmp_path / "leaderboard.toml").write_text('[ladder]\noff = ["calib"]\n')
    app = render(ladder_store, monkeypatch, task="calib")
    shown = table(app, "guarded best")
    assert (shown["public board"] == shown["raw best"]).all() and "The guard is **off**" in texts(app)
    # Self-reported runs join when their tier is chosen (acme's imported run is its best then).
    app = render(ladder_store, monkeypatch, task="calib", tier=list(TIERS))
    assert table(app, "guarded best").set_index("org").loc["acme", "raw best"] == 0.01
    # A broken settings file: said on the page, and the board stays guarded.
    (tmp_path / "leaderboard.toml").write_text("[ladder\n")
    app = render(ladder_store, monkeypatch, task="calib")
    assert app.warning and "every board stays guarded" in app.warning[0].value


def test_the_page_on_an_empty_store_and_on_hostile_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "empty.duckdb"
    with open_store(empty):
        pass
    app = render(empty, monkeypatch)
    assert app.info and "harness" in app.info[0].value
    path = tmp_path / "hostile.duckdb"
    rng = np.random.default_rng(11)
    subs = [
        submission(f"h{i}", f"o/m{i}", 0.1 - 0.01 * i, 0.1 + rng.normal(0, 0.01, 50), metric=HOSTILE, family=HOSTILE)
        for i in range(3)
    ]
    with open_store(path) as store:
        store.ingest([(s, None) for s in subs], tiers=lambda sub, run: "self-reported")
    app = render(path, monkeypatch, task="calib", tier="self-reported")
    assert not app.error, [e.value for e in app.error]
    problems = [f"{p} in {s[:120]!r}" for s in markdown_sources(app) for p in active_content(s)]
    assert not problems, problems
    assert any("calib · " in s and "evil" in s for s in markdown_sources(app))  # shown, escaped
    for text in chart_strings(app):
        assert "<img" not in text and "<a " not in text.lower(), text
