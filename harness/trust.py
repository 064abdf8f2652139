"""How much a number is worth: the trust tiers of a run (docs/trust.md).

- "verified": CI re-ran the checkpoint (reachable at a pinned location: a zoo recipe of this
  repository) on a subset of samples chosen by a seed nobody knew in advance, compared those samples
  with the submitted ones and re-scored every metric (`harness verify`, recorded in the store).
- "re-scored": the per-sample outputs are bound to the task's own data (exactly the split's sample
  ids, labels from the dataset, the values' shape the task declares, the data's fingerprints), and
  every metric, parameter and artifact was recomputed from them with the task's scoring code.
- "self-reported": anything else: results imported from other tools, and runs on data this harness
  cannot read (so the samples cannot be bound to it). Shown on their own, marked, and never ranked
  beside the others unless asked for.

A run's tier is decided when it is ingested (`harness.validation.claimed_tier`, confirmed by validation)
and raised to "verified" by a verification recorded in the store.
"""

from __future__ import annotations

from typing import Literal, get_args

Tier = Literal["verified", "re-scored", "self-reported"]
TIERS: tuple[Tier, ...] = get_args(Tier)
#: the tiers leaderboards rank together by default
RANKED_TIERS: tuple[Tier, ...] = ("verified", "re-scored")
#: short badges for tables (a symbol and the tier's name)
BADGES: dict[str, str] = {"verified": "✔ verified", "re-scored": "↻ re-scored", "self-reported": "✎ self-reported"}


def check_tiers(tiers: list[str] | tuple[str, ...]) -> list[Tier]:
    """`tiers` as Tier values; an unknown name is a ValueError naming the known ones."""
    unknown = [t for t in tiers if t not in TIERS]
    if unknown:
        raise ValueError(f"unknown tier(s) {', '.join(unknown)}: use {', '.join(TIERS)}")
    return [t for t in TIERS if t in tiers]
