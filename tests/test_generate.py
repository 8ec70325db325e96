"""Generation (float64): the key/value cache against the full forward pass, the sampling filters,
seeds, beam search on a hand-built distribution, stopping, batching and argument checks."""

import numpy as np
import pytest
from models import small_model

from scratchlm.errors import InputError
from scratchlm.generate import (
    KVCacheDecoder,
    RecomputeDecoder,
    beam_search,
    generate_batch,
    generate_stream,
)
from scratchlm.sampling import Sampling, top_k_filter, top_p_filter

V = 23


def make_model(depth=3, learned_pos=True, max_seq_len=12):
    """A float64 model whose CoPE table, positions, head and scales are large enough to matter."""
    config = dict(
        vocab_size=V,
        d_model=16,
        n_heads=4,
        d_ff=24,
        depth=depth,
        max_seq_len=max_seq_len,
        cope_max_pos=6,
        learned_pos=learned_pos,
    )
    return small_model(config, depth, loud=("cope", "head.w", "pos_emb", "scale"))


def prompts_of(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(3, V, n).tolist() for n in lengths]


def assert_matches_full_forward(model, decoder, logits):
    """Each row's cached next-token logits equal the full forward pass over what it sees."""
    for row, context in zip(logits, decoder.contexts, strict=True):
        full = model.logits(np.array([context]))[0, -1]
        np.testing.assert_allclose(row, full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [{"depth": 1}, {"depth": 3}, {"depth": 3, "learned_pos": False}],
    ids=["depth1", "depth3", "depth3-no-pos"],
)
def test_cache_equals_full_forward_at_every_position_and_after_sliding(kwargs):
    model = make_model(**kwargs)
    decoder = KVCacheDecoder(model)
    logits = decoder.start(prompts_of([5]))
    lengths = []
    for _ in range(20):  # the 12-token window slides twice
        assert_matches_full_forward(model, decoder, logits)
        lengths.append(len(decoder.contexts[0]))
        logits = decoder.advance(logits.argmax(axis=-1))
    assert lengths[:8] == list(range(5, 13)) and lengths[8] == 6  # kept max_seq_len // 2


def test_cache_with_left_padding_dropped_rows_and_beams():
    model = make_model()
    decoder = KVCacheDecoder(model)
    logits = decoder.start(prompts_of([3, 9, 6, 1]))
    for step in range(16):
        assert_matches_full_forward(model, decoder, logits)
        tokens = logits.argmax(axis=-1)
        if step in (2, 9):  # drop the longest row (padding shrinks), then repeat one like a beam
            rows = [0, 2, 3] if step == 2 else [1, 1, 0]
            decoder.select(rows)
            tokens = tokens[rows]
        logits = decoder.advance(tokens)


def test_prompt_longer_than_the_window_keeps_its_end():
    model = make_model()
    prompt = prompts_of([30])[0]
    decoder = KVCacheDecoder(model)
    decoder.start([prompt])
    assert decoder.contexts == [prompt[-6:]]


def test_cache_and_recompute_generate_the_same():
    model = make_model()
    prompts = prompts_of([2, 7, 4])
    cached = generate_batch(model, prompts, Sampling(max_new_tokens=25))
    assert cached == generate_batch(model, prompts, Sampling(max_new_tokens=25), use_cache=False)
    assert all(len(out) == 25 for out in cached)


def test_batch_equals_one_by_one():
    model = make_model()
    prompts = prompts_of([2, 7, 4, 11])
    sampling = Sampling(max_new_tokens=15)
    batch = generate_batch(model, prompts, sampling, eos_id=20)
    assert batch == [generate_batch(model, [p], sampling, eos_id=20)[0] for p in prompts]
    assert len({len(out) for out in batch}) > 1  # rows stopped at different steps


def test_stops_at_eos_and_does_not_return_it():
    model = make_model()
    prompt = prompts_of([4])[0]
    free = model.generate(prompt, max_new_tokens=20)  # a bare model has no eos: 20 tokens
    stop = free.index(free[3])  # where the first copy of this token appears
    assert model.generate(prompt, max_new_tokens=20, eos_id=free[3]) == free[:stop]
    assert model.generate(prompt, max_new_tokens=0) == []


def test_model_generate_returns_python_ints():
    out = make_model().generate(np.array([3, 4, 5]), max_new_tokens=4)
    assert len(out) == 4 and all(type(t) is int for t in out)


def test_stream_yields_what_generate_returns():
    model = make_model()
    prompt = prompts_of([5])[0]
    opts = {"max_new_tokens": 12, "temperature": 0.8, "top_k": 10, "seed": 7}
    assert list(generate_stream(model, prompt, Sampling(**opts))) == model.generate(prompt, **opts)


def test_greedy_equals_beam_width_one():
    model = make_model()
    prompt = prompts_of([4])[0]
    free = model.generate(prompt, max_new_tokens=20)
    assert beam_search(KVCacheDecoder(model), prompt, 1, 20, eos_id=-1) == free
    eos = free[5]
    greedy = model.generate(prompt, max_new_tokens=20, eos_id=eos)
    assert len(greedy) < 20
    assert beam_search(KVCacheDecoder(model), prompt, 1, 20, eos_id=eos) == greedy


def test_top_k_one_equals_greedy():
    model = make_model()
    prompt = prompts_of([6])[0]
    greedy = model.generate(prompt, max_new_tokens=15)
    assert model.generate(prompt, max_new_tokens=15, temperature=1.5, top_k=1, seed=3) == greedy


def test_same_seed_same_samples_other_seed_differs():
    model = make_model()
    prompt = prompts_of([3])[0]

    def sample(seed):
        return model.generate(prompt, max_new_tokens=20, temperature=1.0, seed=seed)

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = np.array([[0.1, 0.5, 0.05, 0.3, 0.05], [0.2, 0.2, 0.2, 0.2, 0.2]])
    logits = np.log(probs)
    kept = lambda p: np.isfinite(top_p_filter(logits, p))  # noqa: E731
    np.testing.assert_array_equal(kept(0.4)[0], [0, 1, 0, 0, 0])  # the top token alone
    np.testing.assert_array_equal(kept(0.75)[0], [0, 1, 0, 1, 0])  # 0.5 + 0.3 >= 0.75
    np.testing.assert_array_equal(kept(0.85)[0], [1, 1, 0, 1, 0])  # 0.9 >= 0.85
    np.testing.assert_array_equal(kept(0.55)[1], [1, 1, 1, 0, 0])  # ties: first ones by index
    assert kept(1.0).all()
    np.testing.assert_array_equal(top_p_filter(logits, 0.75)[0, [1, 3]], logits[0, [1, 3]])


def test_top_k_filter():
    logits = np.array([[1.0, 4.0, 3.0, 2.0]])
    np.testing.assert_array_equal(np.isfinite(top_k_filter(logits, 2)), [[0, 1, 1, 0]])
    assert top_k_filter(logits, 10) is logits


def test_sampling_follows_the_filtered_distribution():
    model = make_model()
    prompt = prompts_of([3])[0]
    first = KVCacheDecoder(model).start([prompt])[0]
    allowed = set(np.argsort(-first)[:3].tolist())
    draws = generate_batch(model, [prompt] * 200, Sampling(1, temperature=2.0, top_k=3, seed=0))
    assert {d[0] for d in draws} == allowed


class MarkovStub:
    """A decoder whose next-token distribution depends on the last token only: table[last]."""

    def __init__(self, table):
        self.table = table

    def start(self, contexts):
        self.last = [None for _ in contexts]
        return self._logits()

    def advance(self, tokens):
        self.last = [int(t) for t in tokens]
        return self._logits()

    def select(self, rows):
        self.last = [self.last[r] for r in rows]

    def _logits(self):
        with np.errstate(divide="ignore"):
            return np.log(np.array([self.table[t] for t in self.last]))


def test_beam_search_beats_myopic_greedy_on_a_toy_distribution():
    # Greedy takes A (0.6), after which nothing is likely (best 0.35): A C = 0.21. Beam search
    # also keeps B (0.4), which leads to C with 0.9: B C = 0.36.
    A, B, C, D = range(4)
    uniform = [0.25] * 4
    table = {None: [0.6, 0.4, 0, 0], A: [0.3, 0, 0.35, 0.35], B: [0.05, 0.05, 0.9, 0]}
    stub = MarkovStub(table | {C: uniform, D: uniform})
    assert beam_search(stub, [0], 1, 2, eos_id=-1) == [A, C]  # greedy
    assert beam_search(stub, [0], 2, 2, eos_id=-1) == [B, C]


def test_beam_search_length_normalisation():
    # Stopping at once (E) has log-probability log 0.45 = -0.80; "X Y E" has the lower sum
    # log(0.55 * 0.6 * 0.6) = -1.62 but the better mean, -0.54 per token.
    E, X, Y = range(3)
    stub = MarkovStub({None: [0.45, 0.55, 0], X: [0.4, 0, 0.6], Y: [0.6, 0.4, 0]})
    assert beam_search(stub, [0], 2, 5, eos_id=E) == [X, Y]
    assert beam_search(stub, [0], 2, 5, eos_id=E, length_penalty=0.0) == []  # raw sums


def test_beam_search_on_the_model_runs_with_a_real_cache():
    model = make_model()
    prompt = prompts_of([4])[0]
    out = model.generate(prompt, max_new_tokens=10, beam=3)
    assert out == beam_search(RecomputeDecoder(model), prompt, 3, 10, -1)
    assert len(out) == 10


@pytest.mark.parametrize(
    ("prompt", "kwargs", "message"),
    [
        ([], {}, "prompt is empty"),
        ([3, V], {}, rf"prompt\[1\] = {V} is not a token id"),
        ([-1], {}, "is not a token id"),
        ([1.5], {}, "integer token ids"),
        ([[1, 2]], {}, "flat sequence"),
        ([3], {"max_new_tokens": -1}, "max_new_tokens must be an integer >= 0"),
        ([3], {"temperature": -0.5}, "temperature must be a number >= 0"),
        ([3], {"temperature": float("nan")}, "temperature must be a finite number"),
        ([3], {"temperature": "hot"}, "temperature must be a number"),
        ([3], {"top_k": 0}, "top_k must be an integer >= 1"),
        ([3], {"top_p": 0.0}, r"top_p must be a number in \(0, 1\]"),
        ([3], {"top_p": 1.5}, "top_p must be a number"),
        ([3], {"beam": 0}, "beam must be an integer >= 1"),
        ([3], {"beam": 2, "temperature": 0.7}, "beam search is deterministic"),
        ([3], {"seed": -3}, "seed must be"),
        ([3], {"eos_id": V}, "eos_id must be a token id"),
    ],
)
def test_bad_arguments_are_named(prompt, kwargs, message):
    with pytest.raises(InputError, match=message):
        make_model(depth=1).generate(prompt, **kwargs)


def test_batch_argument_errors():
    model = make_model(depth=1)
    with pytest.raises(InputError, match="prompts is empty"):
        generate_batch(model, [])
    with pytest.raises(InputError, match=r"prompts\[1\] is empty"):
        generate_batch(model, [[3], []])
