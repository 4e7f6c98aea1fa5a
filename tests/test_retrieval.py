"""Top-N retrieval from embeddings: exact batched top-k and faiss give the full ranking's results."""

from __future__ import annotations

import pytest
import torch

from ssgraphrec.data.schema import interaction_data, sort_pairs, user_pointer
from ssgraphrec.errors import ConfigError
from ssgraphrec.eval import dot_scores, evaluate_ranking
from ssgraphrec.eval.retrieval import (
    ExactIndex,
    check_backend,
    evaluate_retrieval,
    faiss_available,
    make_index,
    retrieve,
)
from ssgraphrec.methods.base import Method, MethodConfig
from ssgraphrec.train.trainer import Trainer


def _random_split(num_users: int = 120, num_items: int = 700, dim: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    users = torch.randn(num_users, dim, generator=g)
    items = torch.randn(num_items, dim, generator=g)
    train = sort_pairs(torch.stack([torch.randint(0, num_users, (3000,), generator=g),
                                    torch.randint(0, num_items, (3000,), generator=g)]), num_items)
    test = sort_pairs(torch.stack([torch.randint(0, num_users, (300,), generator=g),
                                   torch.randint(0, num_items, (300,), generator=g)]), num_items)
    overlap = torch.isin(test[0] * num_items + test[1], train[0] * num_items + train[1])
    return users, items, train, test[:, ~overlap]


def test_retrieve_leaves_out_excluded_items_and_keeps_score_order():
    # One user u = (1, 0); item scores are their first coordinates: 5, 4, 3, 2, 1.
    items = torch.tensor([[5.0, 0], [4.0, 0], [3.0, 0], [2.0, 0], [1.0, 0]])
    query = torch.tensor([[1.0, 0.0]])
    excluded = torch.tensor([[0, 0], [1, 3]])  # user 0 has items 1 and 3 in training
    ex = [(excluded, user_pointer(excluded, 1))]
    top = retrieve(ExactIndex(items), query, 3, torch.tensor([0]), ex, 5)
    assert top.tolist() == [[0, 2, 4]]


def test_exact_retrieval_metrics_equal_full_ranking_metrics():
    users, items, train, test = _random_split()
    ks = [50, 100, 200, 500]
    full = evaluate_ranking(dot_scores(users, items), test, [train], 120, 700, ks, batch_size=32)
    exact = evaluate_retrieval(users, items, test, [train], 120, 700, ks, batch_size=32)
    assert exact == full
    assert 0 < exact["hit@50"] < exact["hit@500"] <= 1  # the cut-offs see different lists


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed (optional extra 'faiss')")
def test_faiss_flat_index_gives_the_exact_results():
    users, items, train, test = _random_split(seed=3)
    ks = [50, 100, 200, 500]
    exact = evaluate_retrieval(users, items, test, [train], 120, 700, ks, batch_size=50)
    flat = evaluate_retrieval(users, items, test, [train], 120, 700, ks, backend="faiss",
                              batch_size=50)
    assert flat == exact
    ids = torch.arange(120)
    ex = [(train, user_pointer(train, 120))]
    top_exact = retrieve(make_index(items, "exact"), users, 500, ids, ex, 700)
    top_faiss = retrieve(make_index(items, "faiss"), users, 500, ids, ex, 700)
    assert torch.equal(top_exact, top_faiss)


def test_unknown_or_missing_backend_is_a_clear_error():
    with pytest.raises(ConfigError, match="one of exact, faiss"):
        check_backend("annoy")
    if not faiss_available():
        with pytest.raises(ConfigError, match="faiss is not installed"):
            check_backend("faiss")


class _FixedEmbeddings(Method):
    """Fixed random embeddings: the evaluation path is all that is tested."""

    trainable = False

    def __init__(self, data, users: torch.Tensor, items: torch.Tensor):
        super().__init__(data, MethodConfig())
        self.users, self.items = users, items

    def embeddings(self):
        return self.users, self.items


@pytest.mark.skipif(not faiss_available(), reason="faiss is not installed (optional extra 'faiss')")
def test_trainer_with_faiss_retrieval_reports_the_exact_metrics(tmp_path):
    users, items, train, test = _random_split(seed=5)
    data = interaction_data(120, 700, train, None, test)
    method = _FixedEmbeddings(data, users, items)
    kw = dict(epochs=0, ks=[50, 500], monitor="hit@50", progress=False, log=lambda _: None)
    exact = Trainer(method, data, tmp_path / "e", generator=torch.Generator(), **kw).evaluate()
    flat = Trainer(method, data, tmp_path / "f", generator=torch.Generator(), retrieval="faiss",
                   **kw).evaluate()
    assert flat == exact


def test_trainer_names_an_unknown_retrieval_backend(tmp_path):
    users, items, train, test = _random_split(seed=5)
    data = interaction_data(120, 700, train, None, test)
    with pytest.raises(ConfigError, match="retrieval back-end must be one of exact, faiss"):
        Trainer(_FixedEmbeddings(data, users, items), data, tmp_path, epochs=0,
                generator=torch.Generator(), retrieval="hnsw")
