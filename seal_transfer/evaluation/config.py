"""The `buckets` config section: SEAL Clips mAP over class-frequency rank ranges (paper Table 3; torch-free)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class BucketConfig:
    """Rank ranges [start, end) over classes sorted by training frequency; names default to top{end}/top{s}-{e}."""

    ranges: list[list[int]] = field(default_factory=lambda: [[0, 50], [50, 100], [0, 150]])
    names: list[str] = field(default_factory=list)  # empty: derived from the ranges

    def validate(self, key: str = "buckets") -> None:
        from seal_transfer.errors import UserError

        if self.names and len(self.names) != len(self.ranges):
            raise UserError(f"config key '{key}.names': {len(self.names)} names for {len(self.ranges)} ranges")
        for r in self.ranges:
            if len(r) != 2 or not 0 <= r[0] < r[1]:
                raise UserError(f"config key '{key}.ranges': {list(r)} is not [start, end) with 0 <= start < end")

    def bucket_names(self) -> list[str]:
        if self.names:
            if len(self.names) != len(self.ranges):
                raise ValueError(f"buckets: {len(self.names)} names for {len(self.ranges)} ranges")
            return list(self.names)
        return [bucket_name(start, end) for start, end in self.ranges]


def bucket_name(start: int, end: int) -> str:
    """'top50' for [0, 50), 'top50-100' for [50, 100)."""
    return f"top{end}" if start == 0 else f"top{start}-{end}"
