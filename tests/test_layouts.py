import pytest
import torch

from prototok.layouts import IGNORE, LAYOUTS, batch_indices, get_layout


@pytest.mark.parametrize("name", list(LAYOUTS))
@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_layout_supervises_exactly_n_positions(name, n):
    lay = LAYOUTS[name]
    slots, targets = batch_indices(lay, [list(range(10, 10 + n))])
    assert slots.shape == targets.shape == (1, lay.length(n))
    sup = (targets[0] != IGNORE).nonzero().flatten().tolist()
    assert sup == list(range(lay.first_target, lay.first_target + n))
    assert targets[0, sup].tolist() == list(range(10, 10 + n))


def test_layout_shapes_match_the_paper():
    assert LAYOUTS["e m^(N-1)"].slots(4) == [0, 1, 1, 1]
    assert LAYOUTS["e m^N"].slots(3) == [0, 1, 1, 1] and LAYOUTS["e m^N"].first_target == 1
    assert LAYOUTS["e^N"].slots(3) == [0, 0, 0]
    assert LAYOUTS["e^(N/2) m^(N/2)"].slots(4) == [0, 0, 1, 1]
    assert LAYOUTS["(e m)^(N/2)"].slots(4) == [0, 1, 0, 1]


def test_mixed_lengths_are_right_padded_with_ignored_targets():
    slots, targets = batch_indices(get_layout("e m^(N-1)"), [[5, 6, 7], [8]])
    assert targets.tolist() == [[5, 6, 7], [8, IGNORE, IGNORE]]
    assert slots[1].tolist() == [0, 1, 1]


def test_layout_names_accept_missing_spaces_and_reject_unknown():
    assert get_layout("em^(N-1)").name == "e m^(N-1)"
    with pytest.raises(ValueError, match="unknown layout"):
        get_layout("m e")


def test_gather_places_e_and_m(tiny):
    from prototok.onepass import embed_inputs

    d = tiny.hidden_size
    e, m = torch.zeros(2, d), torch.ones(2, d)
    slots, _ = batch_indices(get_layout("(e m)^(N/2)"), [[1, 2, 3, 4], [1, 2]])
    x = embed_inputs(tiny, e, m, slots)
    assert x.shape == (2, 4, d)
    assert x[:, :, 0].tolist() == [[0, 1, 0, 1], [0, 1, 1, 1]]  # second text: 2 real positions, then m padding
