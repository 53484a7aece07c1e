"""The arrangements of e and m from the paper's Table 1, and the batched index tensors built from them.

A layout maps a text length N to the slot of every input position (0 = e, 1 = m) and to the input position
whose output predicts the text's first token; outputs at the next N-1 positions predict the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

IGNORE = -100  # cross_entropy's ignore_index: padded and unsupervised positions


@dataclass(frozen=True)
class Layout:
    name: str
    slots: Callable[[int], list[int]]
    first_target: int  # input position whose output predicts token 0

    def length(self, n: int) -> int:
        return len(self.slots(n))

    def __reduce__(self):
        """A layout of LAYOUTS pickles (and copies) as its name, its slot function being a lambda: so do the
        configs that hold one resolved."""
        if LAYOUTS.get(self.name) is self:
            return get_layout, (self.name,)
        return Layout, (self.name, self.slots, self.first_target)


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("e m^(N-1)", lambda n: [0] + [1] * (n - 1), 0),
        Layout("e m^N", lambda n: [0] + [1] * n, 1),  # e's own output is unsupervised
        Layout("e^N", lambda n: [0] * n, 0),
        Layout("e^(N/2) m^(N/2)", lambda n: [0] * (n - n // 2) + [1] * (n // 2), 0),
        Layout("(e m)^(N/2)", lambda n: [i % 2 for i in range(n)], 0),
    )
}
DEFAULT_LAYOUT = "e m^(N-1)"


def get_layout(name: str) -> Layout:
    """Spaces are optional, so `--layout em^(N-1)` works unquoted."""
    key = name.replace(" ", "")
    for layout in LAYOUTS.values():
        if layout.name.replace(" ", "") == key:
            return layout
    raise ValueError(f"unknown layout '{name}'; choose one of: {', '.join(LAYOUTS)}")


def batch_indices(
    layout: Layout, token_lists: list[list[int]], length: int | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Slot index (B, L) and targets (B, L), right-padded to the longest text (or to `length`).

    With a causal mask a padded position never influences a real one, so padding needs no attention mask;
    its target is IGNORE. Padded inputs use slot 1 (m) only to stay in-distribution; they are never read.
    An empty token list is an all-padding row (a free slot in a fixed-shape batch).
    """
    length = length or max(layout.length(len(t)) for t in token_lists)
    slots = torch.ones(len(token_lists), length, dtype=torch.long)
    targets = torch.full((len(token_lists), length), IGNORE, dtype=torch.long)
    for i, toks in enumerate(token_lists):
        if not toks:
            continue
        s = layout.slots(len(toks))
        slots[i, : len(s)] = torch.tensor(s)
        targets[i, layout.first_target : layout.first_target + len(toks)] = torch.tensor(toks)
    return slots, targets
