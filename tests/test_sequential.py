"""SASRec and CL4SRec on user sequences: encoder masking, inputs, losses, views, learning."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from ssgraphrec.data.schema import CONTAINS, SESSION
from ssgraphrec.data.sessions import (
    from_padded,
    padded_prefixes,
    padded_sessions,
    prefix_samples,
    prefix_targets,
    session_data,
    session_pointer,
)
from ssgraphrec.errors import ConfigError
from ssgraphrec.eval.next_item import evaluate_next_item
from ssgraphrec.losses import info_nce
from ssgraphrec.methods import CL4SRec, CL4SRecConfig, MostPop, SASRec, SASRecConfig
from ssgraphrec.methods.base import METHODS, MethodConfig
from ssgraphrec.nn import SASRecEncoder
from ssgraphrec.train import Trainer

SMALL = dict(emb_dim=32, num_heads=2, num_layers=2, max_len=20, inner_size=64, batch_size=64)


def cycle_data(num_users=300, num_cycles=5, cycle_len=8, seed=0):
    """User sequences with planted structure, split leave-one-out as the S3-Rec reader.

    Items form ``num_cycles`` disjoint cycles of ``cycle_len`` items; each user
    walks one cycle from a random start for 6..14 steps, so the next item is a
    function of the current one. The training sequence holds all items but
    the last two (validation target, test target).
    """
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(6, 15, (num_users,), generator=gen)
    cycle = torch.randint(num_cycles, (num_users,), generator=gen)
    start = torch.randint(cycle_len, (num_users,), generator=gen)
    owner = torch.repeat_interleave(torch.arange(num_users), lengths)
    ptr = torch.zeros(num_users + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(lengths, 0)
    step = torch.arange(int(lengths.sum())) - ptr[owner]
    items = cycle[owner] * cycle_len + (start[owner] + step) % cycle_len
    train_len = lengths - 2
    keep = step < train_len[owner]
    tptr = torch.zeros_like(ptr)
    tptr[1:] = torch.cumsum(train_len, 0)
    data = session_data((tptr, items[keep]), num_cycles * cycle_len, users=torch.arange(num_users),
                        name="cycles")
    store = data[SESSION]
    store.val_target = items[ptr[1:] - 2]
    store.test_target = items[ptr[1:] - 1]
    store.val_mask = torch.ones(num_users, dtype=torch.bool)
    store.test_mask = torch.ones(num_users, dtype=torch.bool)
    data.task = "sequential"
    return data


@pytest.fixture(scope="module")
def cycles():
    return cycle_data()


def make(cls, data, seed=0, **kw):
    cfg_cls = cls.config_class
    torch.manual_seed(seed)
    return cls(data, cfg_cls(**{**SMALL, **kw}), generator=torch.Generator().manual_seed(seed))


# -- encoder -------------------------------------------------------------------
def test_encoder_is_causal():
    torch.manual_seed(0)
    enc = SASRecEncoder(30, dim=16, num_layers=2, num_heads=2, max_len=10, dropout=0.0,
                        inner_size=32).eval()
    ids = torch.tensor([[0, 0, 3, 5, 7, 9, 11, 2, 4, 6]])
    changed = ids.clone()
    changed[0, 6:] = torch.tensor([1, 20, 21, 22])
    out, out2 = enc(ids), enc(changed)
    assert torch.allclose(out[0, :6], out2[0, :6], atol=1e-5)
    assert not torch.allclose(out[0, 6:], out2[0, 6:], atol=1e-3)


def test_encoder_padding_and_batch_do_not_change_the_last_output():
    torch.manual_seed(0)
    enc = SASRecEncoder(30, dim=16, num_layers=2, num_heads=2, max_len=40, dropout=0.0,
                        inner_size=32).eval()
    seq = torch.tensor([3, 5, 7, 9])
    alone = enc.represent(seq.view(1, -1))
    padded = torch.cat([torch.zeros(36, dtype=torch.long), seq]).view(1, -1)
    long_row = (torch.arange(40) % 30 + 1).view(1, -1)  # a full row in the same batch (another bucket)
    batch = torch.cat([long_row, padded])
    assert torch.isfinite(enc(batch)).all()
    assert torch.allclose(enc.represent(padded), alone, atol=1e-5)
    assert torch.allclose(enc.represent(batch)[1], alone[0], atol=1e-5)
    # an item id placed where the padding is would be ignored only if it were padding
    assert not torch.allclose(enc.represent(torch.cat([torch.tensor([[8]]), seq.view(1, -1)], 1)),
                              alone, atol=1e-4)


def test_from_padded_round_trips(cycles):
    sessions = torch.tensor([5, 0, 17, 3])
    ids = padded_sessions(cycles, sessions, 12)
    back = padded_sessions(from_padded(ids, 40), torch.arange(4), 12)
    assert torch.equal(back, ids)


# -- SASRec ------------------------------------------------------------------------
def test_sasrec_inputs_and_scores(cycles):
    model = make(SASRec, cycles).eval()
    samples = torch.tensor([4, 1, 9])
    store = cycles[SESSION]
    assert torch.equal(model.eval_sequences(samples, "val"), padded_sessions(cycles, samples, 20))
    assert torch.equal(model.eval_sequences(samples, "test"),
                       padded_sessions(cycles, samples, 20, append=store.val_target[samples]))
    test_in = model.eval_sequences(samples, "test")
    assert torch.equal(test_in[:, -1], store.val_target[samples] + 1)
    scores = model.score(samples, "test")
    assert scores.shape == (3, 40) and torch.isfinite(scores).all()
    inputs, targets = model.train_sequences(samples)
    full = padded_sessions(cycles, samples, 21)
    assert torch.equal(inputs, full[:, :-1])
    assert torch.equal(targets[inputs > 0], full[:, 1:][inputs > 0])
    assert bool((targets[inputs == 0] == 0).all())


def test_sasrec_rejects_bad_settings(cycles):
    with pytest.raises(ConfigError):
        make(SASRec, cycles, emb_dim=30, num_heads=4)
    with pytest.raises(ConfigError):
        make(CL4SRec, cycles, aug="")
    with pytest.raises(ConfigError):
        make(CL4SRec, cycles, temperature=0.0)


def test_methods_are_registered():
    assert METHODS.get("sasrec") is SASRec and METHODS.get("cl4srec") is CL4SRec
    assert CL4SRecConfig().aug == "item_crop,item_mask,item_reorder"
    cfg = CL4SRecConfig()
    assert (cfg.emb_dim, cfg.num_layers, cfg.num_heads, cfg.max_len, cfg.batch_size, cfg.lr,
            cfg.ssl_weight, cfg.temperature) == (64, 2, 2, 50, 256, 1e-3, 0.1, 1.0)


# -- CL4SRec ----------------------------------------------------------------------
def test_cl4srec_terms_and_zero_weight_equals_sasrec(cycles):
    batch = torch.arange(64)
    terms = make(CL4SRec, cycles).train().loss(batch)
    assert set(terms) == {"ce", "ssl"} and all(torch.isfinite(v) for v in terms.values())
    assert float(terms["ssl"].detach()) > 0
    sas = make(SASRec, cycles, seed=3).train()
    cl = make(CL4SRec, cycles, seed=3, ssl_weight=0.0).train()
    torch.manual_seed(7)
    a = sas.loss(batch)
    torch.manual_seed(7)
    b = cl.loss(batch)
    assert torch.allclose(a["ce"], b["ce"]) and float(b["ssl"]) == 0.0


def test_cl4srec_views_differ_and_keep_the_sequences(cycles):
    model = make(CL4SRec, cycles, aug="item_crop,item_mask,item_reorder")
    inputs, _ = model.train_sequences(torch.arange(100))
    v1, v2 = model.views(inputs)
    assert v1.shape == v2.shape == inputs.shape
    assert not torch.equal(v1, v2) and not torch.equal(v1, inputs)
    mask_token = model.num_items + 1
    assert int(v1.max()) <= mask_token and bool((v1 == mask_token).any())
    # every view item is an item of its own sequence or [mask]
    for view in (v1, v2):
        same = (view[:, :, None] == inputs[:, None, :]).any(2) | (view == mask_token)
        assert bool(same[view > 0].all())
    # one augmentation at a time: crop shortens, mask keeps the length, reorder keeps the set
    lengths = (inputs > 0).sum(1)
    crop = make(CL4SRec, cycles, aug="item_crop").augment(inputs)
    assert bool(((crop > 0).sum(1) <= lengths).all()) and bool(((crop > 0).sum(1) < lengths).any())
    masked = make(CL4SRec, cycles, aug="item_mask").augment(inputs)
    assert torch.equal((masked > 0).sum(1), lengths)
    reord = make(CL4SRec, cycles, aug="item_reorder").augment(inputs)
    assert torch.equal(reord.sort(1).values, inputs.sort(1).values)


def test_cl4srec_correlated_augmentations_run(cycles):
    model = make(CL4SRec, cycles, aug="item_substitute,item_insert").train()
    terms = model.loss(torch.arange(32))
    assert torch.isfinite(terms["ssl"])


def nt_xent(view1, view2, temperature, similarity="dot"):
    return info_nce(view1, view2, temperature, similarity=similarity, negatives="both_views")


def test_nt_xent_uses_both_views_as_negatives():
    z1 = torch.randn(6, 8)
    z2 = torch.randn(6, 8)
    z = torch.cat([z1, z2])
    sim = z @ z.t()
    expected = []
    for i in range(12):
        pos = (i + 6) % 12
        others = [k for k in range(12) if k != i]
        expected.append(-sim[i, pos] + torch.logsumexp(sim[i, others], 0))
    assert torch.allclose(nt_xent(z1, z2, 1.0), torch.stack(expected).mean(), atol=1e-5)
    assert torch.allclose(nt_xent(z1, z1.clone(), 0.5, "cos"), nt_xent(z1, z1, 0.5, "cos"))


# -- learning ------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [SASRec, CL4SRec])
def test_learns_planted_cycles(cls, cycles, tmp_path):
    """Each user walks a fixed item cycle: a few epochs put the next item in the top 10
    far more often than popularity does."""
    pop = MostPop(cycles, MethodConfig())
    pop_hr = evaluate_next_item(pop.score, cycles, "test", 40, (10,))["hit@10"]
    model = make(cls, cycles, dropout=0.1)
    trainer = Trainer(model, cycles, tmp_path / cls.name, epochs=6, patience=6,
                      monitor="hit@10", ks=[10], generator=torch.Generator().manual_seed(0),
                      progress=False, log=lambda msg: None)
    hr = trainer.fit()["test"]["hit@10"]
    assert hr > max(0.6, pop_hr + 0.3), (cls.name, hr, pop_hr)


def test_config_fields_are_documented():
    names = {f.name for f in dataclasses.fields(CL4SRecConfig)}
    assert {"aug", "ssl_weight", "temperature", "crop_eta", "mask_gamma", "reorder_beta"} <= names
    assert SASRecConfig().dropout == 0.5


def cycle_session_samples(num_sessions=400, num_cycles=5, cycle_len=8, seed=0):
    """Next-item samples (prefix augmented, DHCN style) of cycle walks: 80 % train, 20 % test."""
    gen = torch.Generator().manual_seed(seed)
    lengths = torch.randint(3, 9, (num_sessions,), generator=gen)
    cycle = torch.randint(num_cycles, (num_sessions,), generator=gen)
    start = torch.randint(cycle_len, (num_sessions,), generator=gen)
    ptr = torch.zeros(num_sessions + 1, dtype=torch.long)
    ptr[1:] = torch.cumsum(lengths, 0)
    owner = torch.repeat_interleave(torch.arange(num_sessions), lengths)
    step = torch.arange(int(lengths.sum())) - ptr[owner]
    items = cycle[owner] * cycle_len + (start[owner] + step) % cycle_len
    sample_ptr, sample_items, targets = prefix_samples(ptr, items)
    split = (torch.rand(targets.numel(), generator=gen) < 0.2).long() * 2
    return session_data((sample_ptr, sample_items), num_cycles * cycle_len, targets=targets,
                        split=split, name="cycle-sessions")


def test_sasrec_on_session_samples_trains_on_the_label_and_learns(tmp_path):
    data = cycle_session_samples()
    model = make(SASRec, data, dropout=0.1)
    batch = torch.tensor([0, 5])
    inputs, targets = model.train_sequences(batch)
    # the input is the session; only the last position has a target: the sample's label
    assert torch.equal(inputs, padded_sessions(data, batch, model.cfg.max_len))
    assert torch.equal(targets[:, -1], data[SESSION].target[batch] + 1)
    assert int((targets[:, :-1] != 0).sum()) == 0
    pop = MostPop(data, MethodConfig())
    pop_hr = evaluate_next_item(pop.score, data, "test", 40, (5,))["hit@5"]
    trainer = Trainer(model, data, tmp_path, epochs=4, patience=4, monitor="hit@5", ks=[5],
                      generator=torch.Generator().manual_seed(0), progress=False, log=lambda m: None)
    hr = trainer.fit()["test"]["hit@5"]
    assert hr > max(0.6, pop_hr + 0.3), (hr, pop_hr)
    with pytest.raises(ConfigError, match="sequential data"):
        Trainer(make(CL4SRec, data), data, tmp_path / "cl", epochs=1, ks=[5], monitor="hit@5",
                generator=torch.Generator(), progress=False)


# -- prefix feeding (RecBole / DuoRec) and the pair of augmentations -----------------
def test_prefix_targets_and_padded_prefixes_exact():
    ptr = torch.tensor([0, 3, 4, 8])
    items = torch.tensor([5, 6, 7, 1, 2, 3, 4, 0])
    data = session_data((ptr, items), 10)
    ends = prefix_targets(data)
    # every incidence but the first of its session; the one-item session gives none
    assert ends.tolist() == [1, 2, 5, 6, 7]
    rows = padded_prefixes(data, ends, 3)
    # ids are +1-shifted, left-padded, the last 3 items before the target kept
    assert rows.tolist() == [[0, 0, 6], [0, 6, 7], [0, 0, 3], [0, 3, 4], [3, 4, 5]]
    only_last = prefix_targets(data, torch.tensor([False, False, True]))
    assert only_last.tolist() == [5, 6, 7]


def test_sasrec_trains_on_prefixes(cycles):
    model = make(SASRec, cycles, train_on="prefixes")
    lengths = cycles[SESSION].train_mask.long() * session_pointer(cycles).diff()
    assert model.train_samples.numel() == int((lengths - 1).clamp(min=0).sum())
    ptr = session_pointer(cycles)
    k = int(ptr[7]) + 3  # the fourth item of user 7: its prefix is the first three
    inputs, targets = model.train_sequences(torch.tensor([k]))
    seq = cycles[CONTAINS].edge_index[1, ptr[7]:ptr[8]] + 1
    assert inputs[0, -3:].tolist() == seq[:3].tolist() and int((inputs[0, :-3] != 0).sum()) == 0
    assert int(targets[0, -1]) == int(seq[3]) and int((targets[0, :-1] != 0).sum()) == 0
    # the per-user inputs are unchanged by default
    assert SASRecConfig().train_on == "sequences"
    with pytest.raises(ConfigError, match="train_on"):
        make(SASRec, cycles, train_on="users")
    with pytest.raises(ConfigError, match="sequential data"):
        make(SASRec, cycle_session_samples(), train_on="prefixes")


def test_cl4srec_pairs_two_different_augmentations(cycles):
    model = make(CL4SRec, cycles)
    first, second = model.pair_choices(3000, torch.device("cpu"))
    assert bool((first != second).all())
    # the six ordered pairs of the three operators are equally likely
    counts = torch.bincount(first * 3 + second, minlength=9)[[1, 2, 3, 5, 6, 7]]
    assert int(counts.min()) > 400 and int(counts.max()) < 600
    one = make(CL4SRec, cycles, aug="item_mask")
    a, b = one.pair_choices(50, torch.device("cpu"))
    assert torch.equal(a, b)
    # crop + mask: exactly one view of each sequence of >= 4 items (floor(0.3 * 4) = 1
    # masked) holds the [mask] token
    two = make(CL4SRec, cycles, aug="item_crop,item_mask")
    inputs, _ = two.train_sequences(torch.arange(300))
    inputs = inputs[(inputs > 0).sum(1) >= 4]
    v1, v2 = two.views(inputs)
    token = two.num_items + 1
    assert inputs.size(0) > 100
    assert bool(((v1 == token).any(1) ^ (v2 == token).any(1)).all())


def test_cl4srec_on_prefixes_learns_planted_cycles(cycles, tmp_path):
    pop = MostPop(cycles, MethodConfig())
    pop_hr = evaluate_next_item(pop.score, cycles, "test", 40, (10,))["hit@10"]
    model = make(CL4SRec, cycles, dropout=0.1, train_on="prefixes", batch_size=256)
    terms = model.train().loss(model.train_samples[:32])
    assert torch.isfinite(terms["ssl"]) and float(terms["ssl"].detach()) > 0
    trainer = Trainer(model, cycles, tmp_path, epochs=2, patience=2, monitor="hit@10", ks=[10],
                      generator=torch.Generator().manual_seed(0), progress=False, log=lambda m: None)
    hr = trainer.fit()["test"]["hit@10"]
    assert hr > max(0.6, pop_hr + 0.3), (hr, pop_hr)


def test_cl4srec_crop_view_is_right_aligned_contiguous_and_never_empty(cycles):
    """The cropped view of a left-padded input keeps floor(eta * L) >= 1 consecutive items,
    right-aligned, so its last item sits at the last column: the position the encoder
    reads the representation from (Sec. 3.3; RecBole gathers at ``aug_len - 1``)."""
    model = make(CL4SRec, cycles, aug="item_crop", crop_eta=0.6)
    inputs, _ = model.train_sequences(torch.arange(120))
    inputs[0, :-1] = 0  # a one-item sequence
    view = model.augment(inputs)
    for row, out in zip(inputs.tolist(), view.tolist(), strict=True):
        items = [v for v in row if v]
        kept = [v for v in out if v]
        assert len(kept) == max(1, int(0.6 * len(items)))
        assert out[len(out) - len(kept):] == kept  # right-aligned, no gap
        starts = [i for i in range(len(items) - len(kept) + 1) if items[i:i + len(kept)] == kept]
        assert starts, (items, kept)
