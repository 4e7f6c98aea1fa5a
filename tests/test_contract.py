"""Contract tests over the whole registry: every method and every augmentation.

A method or an augmentation registered anywhere in the package is picked up here
without a line of its own (docs/architecture.md, "Contracts"):

* every method, on tiny data of each task it declares: finite named loss terms,
  gradients reaching every trainable parameter, the same loss twice under one seed,
  a ``state_dict`` round trip that gives the same scores, and no held-out
  interaction in any tensor it holds;
* every augmentation: the input is not mutated, the output is the same under one
  seed, and it composes with ``T.Compose``.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterator

import pytest
import torch
import torch_geometric.transforms as T
from test_dhcn import session_dataset
from test_sequential import cycle_data
from torch import nn
from torch_geometric.data import HeteroData

from ssgraphrec.data.build import build_dataset
from ssgraphrec.data.schema import INTERACTS, SESSION, task_of
from ssgraphrec.data.synthetic import SyntheticConfig, make_synthetic
from ssgraphrec.data.synthetic_features import FeatureSyntheticConfig, make_feature_synthetic
from ssgraphrec.data.views import HELD_OUT_PREFIXES, training_view
from ssgraphrec.errors import ConfigError
from ssgraphrec.methods import METHODS
from ssgraphrec.sparse import Adjacency, BipartiteGraph
from ssgraphrec.train.tasks import make_task
from ssgraphrec.transforms import AUGMENTATIONS, make_augmentation
from ssgraphrec.transforms.graph_diffusion import with_embeddings

#: Settings that make every method tiny; each applies where the method has the field.
TINY = {"emb_dim": 16, "num_layers": 2, "batch_size": 64, "num_heads": 2, "max_len": 12,
        "inner_size": 32, "num_clusters": 4, "warm_up_epochs": 0, "kmeans_iters": 3,
        "hidden": "32,16", "queue_batches": 2, "pretrain_batch_size": 32, "neg_samp_num": 8,
        "num_neighbors": 10, "score_hidden": 4, "recon_batch_size": 32, "k_shot": 2,
        "target_min_degree": 3, "ssl_batch_size": 64, "semantic_neighbours": 3}


# -- tiny data of every task --------------------------------------------------

@functools.cache
def ranking_social() -> HeteroData:
    raw = make_synthetic(SyntheticConfig(num_users=80, num_items=150, num_communities=4,
                                         mean_interactions=12, social=True), seed=0)
    return build_dataset(raw, split="random", test_ratio=0.2, val_ratio=0.1, seed=0)


@functools.cache
def ranking_features() -> HeteroData:
    raw = make_feature_synthetic(FeatureSyntheticConfig(num_users=80, num_items=150,
                                                        interactions_per_user=12), seed=0)
    return build_dataset(raw, split="random", test_ratio=0.2, val_ratio=0.1, seed=0)


@functools.cache
def next_item() -> HeteroData:
    return session_dataset(num_clusters=4, size=6, sessions=150)


@functools.cache
def sequential() -> HeteroData:
    return cycle_data(num_users=60, num_cycles=3, cycle_len=6)


CANDIDATES = {"ranking": (ranking_social, ranking_features), "next_item": (next_item,),
              "sequential": (sequential,)}


def tiny_config(cls):
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    return cls.config_class(**{k: v for k, v in TINY.items() if k in fields})


def construct(cls, data: HeteroData, seed: int = 0):
    torch.manual_seed(seed)
    return cls(training_view(data), tiny_config(cls), backend="torch",
               generator=torch.Generator().manual_seed(seed))


@functools.cache
def data_for(name: str, task: str) -> HeteroData:
    """The first tiny dataset of ``task`` that method ``name`` accepts (MHCN needs social
    links, MicRec item attributes); none is a failure of the contract."""
    cls = METHODS.get(name)
    reasons = []
    for make in CANDIDATES[task]:
        try:
            construct(cls, make())
            return make()
        except ConfigError as exc:
            reasons.append(f"{make.__name__}: {exc}")
    raise AssertionError(f"{name} runs on no tiny {task} dataset: {reasons}")


CASES = [(name, task) for name, cls in METHODS.items() for task in cls.tasks]
TRAINED = [(name, task) for name, task in CASES if METHODS.get(name).trainable]


def coverage_line() -> str:
    """What the contract tests cover, printed at the end of the run (tests/conftest.py)."""
    return (f"contract tests cover {len(METHODS)}/{len(METHODS)} registered methods "
            f"({len(CASES)} method-task pairs) and {len(AUGMENTATIONS)}/{len(AUGMENTATIONS)} "
            "registered augmentations")


def test_every_registered_method_and_augmentation_is_covered():
    assert {name for name, _ in CASES} == set(METHODS)
    assert {name for name, _ in TRAINED} == {n for n, c in METHODS.items() if c.trainable}
    assert len(CASES) >= len(METHODS) and len(AUGMENTATIONS) > 0


def test_build_constructs_the_method_from_the_training_view(monkeypatch):
    from ssgraphrec.config import RunConfig
    from ssgraphrec.methods.lightgcn import LightGCN
    from ssgraphrec.train.run import build

    seen = []
    original = LightGCN.__init__

    def spy(self, data, cfg, **kw):
        seen.append(data)
        original(self, data, cfg, **kw)

    monkeypatch.setattr(LightGCN, "__init__", spy)
    run = build(RunConfig(method="lightgcn", params={"emb_dim": 8}))
    assert run.data[INTERACTS].test_edge_index.size(1) > 0       # the trainer evaluates on it
    assert len(seen) == 1 and "test_edge_index" not in seen[0][INTERACTS]
    assert "val_edge_index" not in seen[0][INTERACTS]
    assert seen[0][INTERACTS].edge_index is run.data[INTERACTS].edge_index  # shared, not copied


def first_batch(method, data: HeteroData, seed: int = 0):
    task = make_task(data, method)
    batches, _ = task.batches(method, torch.Generator().manual_seed(seed))
    return next(iter(batches))


def loss_terms(method, data: HeteroData, pretrain: bool = False) -> dict[str, torch.Tensor]:
    method.train()
    if pretrain:  # the last pre-training epoch: every pretext task is on by then (PT-GNN)
        method.on_pretrain_epoch_start(max(method.paper_pretrain_epochs() - 1, 0))
        own = method.pretrain_batches(torch.Generator().manual_seed(0))
        batch = next(iter(own[0])) if own is not None else first_batch(method, data)
        return method.pretrain_loss(batch)
    method.on_epoch_start(0)
    return method.loss(first_batch(method, data))


def scores(method, data: HeteroData) -> torch.Tensor:
    method.eval()
    with torch.no_grad():
        if task_of(data) == "ranking":
            return method.ranking_scores()(torch.arange(data["user"].num_nodes)).clone()
        samples = data[SESSION].test_mask.nonzero().view(-1)
        return method.score(samples, "test").clone()


# -- methods ------------------------------------------------------------------

@pytest.mark.parametrize("name,task", TRAINED)
def test_loss_terms_are_named_finite_scalars_and_repeat_under_one_seed(name, task):
    cls, data = METHODS.get(name), data_for(name, task)
    first = loss_terms(construct(cls, data), data)
    again = loss_terms(construct(cls, data), data)
    assert first and all(isinstance(k, str) and k for k in first), first
    for key, value in first.items():
        assert value.dim() == 0 and torch.isfinite(value), (key, value)
    assert set(first) == set(again)
    for key in first:
        torch.testing.assert_close(first[key], again[key], msg=f"{name}: term {key} differs")


@pytest.mark.parametrize("name,task", TRAINED)
def test_gradients_reach_every_trainable_parameter(name, task):
    cls, data = METHODS.get(name), data_for(name, task)
    method = construct(cls, data)
    total = sum(loss_terms(method, data).values())
    if method.has_pretrain_task():  # heads of the pretext tasks train in pre-training only
        total = total + sum(loss_terms(method, data, pretrain=True).values())
    total.backward()
    missing = [n for n, p in method.named_parameters()
               if p.requires_grad and (p.grad is None or not torch.isfinite(p.grad).all())]
    assert not missing, f"{name}: no (finite) gradient for {missing}"


@pytest.mark.parametrize("name,task", TRAINED)
def test_the_joint_loss_alone_reaches_every_parameter_unless_the_method_pretrains(name, task):
    """What lets DistributedDataParallel run without searching for unused parameters."""
    cls, data = METHODS.get(name), data_for(name, task)
    method = construct(cls, data)
    if method.has_pretrain_task():
        pytest.skip(f"{name} pre-trains: its pretext heads are unused in joint training")
    sum(loss_terms(method, data).values()).backward()
    missing = [n for n, p in method.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing, f"{name}: joint loss reaches no {missing}"


@pytest.mark.parametrize("name,task", CASES)
def test_state_dict_round_trip_gives_the_same_scores(name, task):
    cls, data = METHODS.get(name), data_for(name, task)
    trained = construct(cls, data, seed=0)
    if cls.trainable:  # one step, so that the state is not the initial one
        opt = torch.optim.SGD([p for p in trained.parameters() if p.requires_grad], lr=0.1)
        sum(loss_terms(trained, data).values()).backward()
        opt.step()
    fresh = construct(cls, data, seed=1)
    fresh.load_state_dict(copy.deepcopy(trained.state_dict()))
    expected = scores(trained, data)
    assert torch.isfinite(expected).any()
    torch.testing.assert_close(scores(fresh, data), expected)


@pytest.mark.parametrize("name,task", CASES)
def test_construction_leaves_the_config_it_is_given_alone(name, task):
    cls, data = METHODS.get(name), data_for(name, task)
    cfg = tiny_config(cls)
    before = dataclasses.asdict(cfg)
    cls(training_view(data), cfg, backend="torch", generator=torch.Generator().manual_seed(0))
    assert dataclasses.asdict(cfg) == before


# -- no held-out interaction reaches a method ---------------------------------

def _pairs(tensor: torch.Tensor) -> Iterator[torch.Tensor]:
    """The ``[2, E]`` index pairs a tensor holds: an edge list, or a sparse matrix's."""
    if tensor.layout == torch.sparse_coo:
        yield tensor.coalesce().indices()
    elif tensor.layout == torch.sparse_csr:
        rows = torch.repeat_interleave(torch.arange(tensor.size(0)), tensor.crow_indices().diff())
        yield torch.stack([rows, tensor.col_indices()])
    elif not tensor.is_floating_point() and tensor.dim() == 2 and tensor.size(0) == 2:
        yield tensor


def held_pairs(root) -> Iterator[torch.Tensor]:
    """Every ``[2, E]`` index tensor reachable from ``root``: its tensors, modules,
    containers, HeteroData stores, sparse matrices and the package's own objects."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, torch.Tensor):
            yield from _pairs(obj)
        elif isinstance(obj, Adjacency):
            rows = torch.repeat_interleave(torch.arange(obj.size), obj.crow.diff())
            yield torch.stack([rows, obj.col])
        elif isinstance(obj, HeteroData):
            stack.extend(v for store in obj.stores for v in store.values())
        elif isinstance(obj, dict):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set)):
            stack.extend(obj)
        elif isinstance(obj, nn.Module) or type(obj).__module__.startswith(
                ("ssgraphrec", "torch_geometric")) and hasattr(obj, "__dict__"):
            stack.extend(vars(obj).values())


def leaked(root, data: HeteroData) -> int:
    """How many test pairs of ``data`` appear in a tensor of ``root``, as (user, item)
    or in the bipartite node numbering (item ``i`` is node ``num_users + i``).

    Only the test pairs that no other pair can be mistaken for count: their item id is
    at least the number of users (so no user-user pair, such as a social link, equals
    one), and ``(u, i - num_users)`` is no known pair (whose bipartite form would be
    ``(u, i)``)."""
    nu = data["user"].num_nodes
    store = data[INTERACTS]
    known = {tuple(p) for key in ("edge_index", "val_edge_index", "test_edge_index")
             for p in store[key].t().tolist()}
    keys = {(u, i) for u, i in store.test_edge_index.t().tolist()
            if i >= nu and (u, i - nu) not in known}
    assert len(keys) > 10
    keys |= {(u, nu + i) for u, i in keys} | {(nu + i, u) for u, i in keys}
    found = set()
    for pairs in held_pairs(root):
        found |= keys & set(map(tuple, pairs.long().t().tolist()))
    return len(found)


def test_the_leak_check_finds_held_out_pairs_where_they_are():
    data = ranking_social()
    assert leaked(data, data) > 0     # the whole dataset holds its test pairs
    store = data[INTERACTS]
    both = torch.cat([store.edge_index, store.test_edge_index], 1)
    graph = BipartiteGraph(both, data["user"].num_nodes, data["item"].num_nodes)
    assert leaked(graph.normalized_adjacency(), data) > 0
    assert leaked(training_view(data), data) == 0


@pytest.mark.parametrize("name", [n for n, task in CASES if task == "ranking"])
def test_no_method_holds_a_test_interaction(name):
    data = data_for(name, "ranking")
    method = construct(METHODS.get(name), data)
    if method.trainable:
        loss_terms(method, data)   # views and structures drawn during training too
    assert leaked(method, data) == 0


@pytest.mark.parametrize("name,task", [c for c in CASES if c[1] != "ranking"])
def test_session_methods_see_no_held_out_target(name, task):
    """Structurally: no dataset the method keeps holds a held-out target. Behaviourally,
    for a method that keeps none (MostPop keeps counts): changing every held-out target
    changes nothing the method computes."""
    data = data_for(name, task)
    method = construct(METHODS.get(name), data)
    for view in [training_view(data), *_reachable_data(method)]:
        store = view[SESSION]
        assert "test_target" not in store
        if "target" in store:
            assert bool((store.target[~store.train_mask] == -1).all())
        for edge_store in view.edge_stores:
            assert not any(k.startswith(HELD_OUT_PREFIXES) for k in edge_store.keys())
    moved = _with_other_held_out_targets(data)
    torch.testing.assert_close(scores(construct(METHODS.get(name), moved), data),
                               scores(method, data))


def test_the_held_out_target_check_catches_a_method_that_reads_them():
    """Positive control: scores from every target count (a leak) change when the held-out
    targets change, unless the method is built from the training view."""
    data = next_item()

    def popularity(d: HeteroData) -> torch.Tensor:
        target = d[SESSION].target
        return torch.bincount(target[target >= 0], minlength=d["item"].num_nodes).float()

    moved = _with_other_held_out_targets(data)
    assert not torch.equal(popularity(data), popularity(moved))               # leaks
    assert torch.equal(popularity(training_view(data)), popularity(training_view(moved)))


def _with_other_held_out_targets(data: HeteroData) -> HeteroData:
    """A copy of session ``data`` whose test targets (and the targets of every sample
    outside training) name other items."""
    out = copy.copy(data)
    store = out[SESSION]
    n_items = data["item"].num_nodes
    if "target" in store:
        other = (store.target + 1) % n_items
        store.target = torch.where(store.train_mask, store.target, other)
    if "test_target" in store:
        store.test_target = torch.where(store.test_target >= 0,
                                        (store.test_target + 1) % n_items, store.test_target)
    return out


def _reachable_data(method) -> list[HeteroData]:
    """The datasets a method keeps (MostPop keeps none: only its counts)."""
    return [v for v in vars(method).values() if isinstance(v, HeteroData)]


# -- augmentations ------------------------------------------------------------

def augmentation_input(name: str):
    """(data, transform factory) of the augmentation ``name`` on the tiny data of its kind."""
    probe = make_augmentation(name)
    edge_type = getattr(probe, "edge_type", None)
    if name == "graph_diffusion":
        data = ranking_social()
        emb = torch.Generator().manual_seed(5)
        data = with_embeddings(training_view(data), torch.randn(80, 4, generator=emb),
                               torch.randn(150, 4, generator=emb))
        del data[INTERACTS].time   # an added edge has no time: graph_diffusion refuses it
    elif edge_type is not None and tuple(edge_type) == INTERACTS:
        data = training_view(ranking_social())
    elif "field" in name or "feature" in name or "categorical" in name:
        data = training_view(ranking_features())
    else:
        data = training_view(sequential())
    return data


def _snapshot(data: HeteroData) -> dict:
    return {(str(k), key): (v.clone() if isinstance(v, torch.Tensor) else copy.deepcopy(v))
            for k, store in zip(range(len(data.stores)), data.stores, strict=True)
            for key, v in store.items()}


def _same(a: dict, b: dict) -> bool:
    if a.keys() != b.keys():
        return False
    for key in a:
        x, y = a[key], b[key]
        if isinstance(x, torch.Tensor):
            if not (isinstance(y, torch.Tensor) and x.shape == y.shape and torch.equal(x, y)):
                return False
        elif isinstance(x, list) and x and isinstance(x[0], torch.Tensor):
            if len(x) != len(y) or not all(torch.equal(p, q) for p, q in zip(x, y, strict=True)):
                return False
        elif x != y:
            return False
    return True


def _apply(name: str, data: HeteroData, seed: int, compose: bool = False) -> HeteroData:
    offered = {"generator": torch.Generator().manual_seed(seed), "p": 0.3, "num_layers": 2}
    if name in ("item_insert", "item_substitute"):
        from ssgraphrec.transforms.item_cooccurrence import ItemCooccurrence
        offered["cooccurrence"] = ItemCooccurrence.from_data(data, mask="train_mask")
    aug = make_augmentation(name, offered=offered)
    torch.manual_seed(seed)
    return (T.Compose([aug]) if compose else aug)(data)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_augmentation_leaves_its_input_alone_and_repeats_under_one_seed(name):
    data = augmentation_input(name)
    before = _snapshot(data)
    first = _apply(name, data, seed=3)
    assert _same(_snapshot(data), before), f"{name} changed its input"
    again = _apply(name, data, seed=3)
    assert _same(_snapshot(first), _snapshot(again)), f"{name} differs under one seed"
    composed = _apply(name, data, seed=3, compose=True)
    assert _same(_snapshot(composed), _snapshot(first)), f"{name} differs inside T.Compose"


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_augmentation_refuses_an_unknown_argument(name):
    with pytest.raises(ConfigError, match="takes no argument 'typo_param'"):
        make_augmentation(name, typo_param=5)
