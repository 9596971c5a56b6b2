"""The matching market in array form: the shape the engine and the certificate work on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Market:
    """Students' acceptable positions in preference order, in CSR layout.

    For student `s`, slots `pref_ptr[s]:pref_ptr[s+1]` hold the positions `pref_pos[k]` they
    may be matched to, best first, and `pos_rank[k]`, the rank that position gives the
    student (0 = its favourite; ranks are distinct within one position).
    """

    capacity: IntArray  # seats per position
    pref_ptr: IntArray  # len = students + 1
    pref_pos: IntArray  # len = number of acceptable pairs
    pos_rank: IntArray  # len = number of acceptable pairs

    @property
    def n_students(self) -> int:
        return len(self.pref_ptr) - 1

    @property
    def n_positions(self) -> int:
        return len(self.capacity)

    @property
    def slot_student(self) -> IntArray:
        """The student owning each slot."""
        return np.repeat(np.arange(self.n_students), np.diff(self.pref_ptr))

    @classmethod
    def from_lists(
        cls,
        capacity: list[int],
        student_prefs: list[list[int]],
        position_prefs: list[list[int]],
    ) -> Market:
        """Build from plain lists: each student's positions best first, each position's
        students best first. A pair is acceptable when each side lists the other."""
        rank_of = [{s: r for r, s in enumerate(prefs)} for prefs in position_prefs]
        ptr = [0]
        pos: list[int] = []
        rank: list[int] = []
        for s, prefs in enumerate(student_prefs):
            for p in prefs:
                r = rank_of[p].get(s)
                if r is not None:
                    pos.append(p)
                    rank.append(r)
            ptr.append(len(pos))
        return cls(
            capacity=np.asarray(capacity, dtype=np.int64),
            pref_ptr=np.asarray(ptr, dtype=np.int64),
            pref_pos=np.asarray(pos, dtype=np.int64),
            pos_rank=np.asarray(rank, dtype=np.int64),
        )
