"""Answer confidence: the log-probabilities two ways (decoding loop, one forward pass) agree, and
the threshold is chosen as documented."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from models import small_model

from scratchlm import Model, ModelConfig
from scratchlm.confidence import (
    answer_logprobs,
    choose_threshold,
    confidence,
    is_confident,
    token_logprobs,
)
from scratchlm.generate import make_decoder
from scratchlm.sampling import Sampling, next_tokens

V = 23


@pytest.fixture(scope="module")
def model():
    config = dict(vocab_size=V, d_model=16, n_heads=2, d_ff=32, max_seq_len=12, cope_max_pos=8)
    return small_model(config, 0, loud=("head.w", "tok_emb"))


def decode_with_logprobs(model, prompt, sampling, eos):
    """What a server does: draw from each step's logits and keep the drawn token's log p."""
    decoder, rng = make_decoder(model), np.random.default_rng(sampling.seed)
    logits = decoder.start([prompt])
    tokens, logprobs = [], []
    for _ in range(sampling.max_new_tokens):
        token = next_tokens(logits, sampling, rng)  # (1,)
        logprobs.append(token_logprobs(logits, token)[0])
        if token[0] == eos:
            break
        tokens.append(int(token[0]))
        logits = decoder.advance(token)
    return tokens, np.array(logprobs)


@pytest.mark.parametrize("temperature", [0.0, 1.5])
@pytest.mark.parametrize("prompt", [[5], [3, 4, 5]])
def test_one_forward_pass_gives_the_decoding_loops_logprobs(model, prompt, temperature):
    sampling = Sampling(max_new_tokens=8, temperature=temperature, seed=1)
    tokens, looped = decode_with_logprobs(model, prompt, sampling, eos=2)
    ended = len(tokens) < sampling.max_new_tokens
    (scored,) = answer_logprobs(model, [prompt], [tokens], [ended], eos_id=2)
    np.testing.assert_allclose(scored, looped, rtol=1e-9, atol=1e-9)
    assert scored.shape == (len(tokens) + ended,) and np.all(scored <= 0)


@pytest.mark.parametrize("ended", [True, False])
def test_the_end_of_sequence_token_counts_where_the_answer_ended(model, ended):
    (scored,) = answer_logprobs(model, [[3, 4]], [[5, 6]], [ended], eos_id=2)
    full = model.logits(np.array([[3, 4, 5, 6]]))[0]  # (T, V)
    want = token_logprobs(full[1:3], [5, 6])
    if ended:
        want = np.append(want, token_logprobs(full[3:], [2]))
    np.testing.assert_allclose(scored, want, rtol=1e-12)


def test_a_long_conversation_keeps_the_last_window(model):
    prompt, answer = list(range(3, 20)), [4, 5, 6]  # 17 + 3 + eos tokens, window 12
    (scored,) = answer_logprobs(model, [prompt], [answer], eos_id=2)
    (cut,) = answer_logprobs(model, [prompt[-(12 - len(answer)) :]], [answer], eos_id=2)
    np.testing.assert_array_equal(scored, cut)
    (short,) = answer_logprobs(model, [[3]], [list(range(3, 20))], eos_id=2)
    assert len(short) == 12  # answer tokens with no token before them in the window are not scored


def test_a_batch_scores_what_each_answer_scores_alone(model):
    prompts = [[3], [4, 5, 6], [7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]]
    answers = [[9, 9, 9], [], [3, 4]]
    together = answer_logprobs(model, prompts, answers, eos_id=2)
    for p, a, got in zip(prompts, answers, together, strict=True):
        np.testing.assert_allclose(got, answer_logprobs(model, [p], [a], eos_id=2)[0], atol=1e-12)
        assert len(got) == len(a) + 1


def test_token_logprobs_are_log_softmax_at_the_token():
    logits = np.array([[0.0, 1.0, 2.0], [5.0, 5.0, 5.0]], dtype=np.float32)
    got = token_logprobs(logits, [2, 0])
    want = [2 - math.log(1 + math.e + math.e**2), -math.log(3)]
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got.dtype == np.float64


def test_confidence_is_the_geometric_mean_probability():
    assert confidence(np.log([0.5, 0.5])) == pytest.approx(0.5)
    assert confidence(np.log([1.0, 0.25])) == pytest.approx(0.5)
    assert confidence([]) == 1.0
    assert is_confident(np.log([0.1]), None) and not is_confident(np.log([0.1]), 0.2)


def test_a_model_without_tokenizer_needs_an_eos():
    bare = Model(ModelConfig(vocab_size=V, d_model=8, n_heads=2, d_ff=8, max_seq_len=8), seed=0)
    (scored,) = answer_logprobs(bare, [[3]], [[4, 5]])  # no eos: the answer's tokens alone
    assert scored.shape == (2,)


def test_choose_threshold_examples():
    # two right known answers, a wrong one, and a wrong answer to an unknowable question
    conf, right, unknowable = [0.99, 0.95, 0.6, 0.5], [1, 1, 0, 0], [0, 0, 0, 1]
    said = [False] * 4
    assert choose_threshold(conf, right, unknowable, said) == pytest.approx(0.55)
    # withholding 0.6 too gains nothing (a known question: wrong either way) and costs its answer
    assert choose_threshold(conf, right, unknowable, said, 0.5) == pytest.approx(0.55)
    # reaching the unknowable question (0.3) withholds a known one (0.2): only if the cap allows
    args = ([0.9, 0.3, 0.2], [1, 0, 0], [0, 1, 0], [False] * 3)
    assert choose_threshold(*args, 0.5) == pytest.approx(0.6)
    assert choose_threshold(*args, 0.0) == 0.0
    # the model's own "I don't know" to a known question counts towards the cap
    assert choose_threshold([0.9, 0.5, 0.1], [0, 1, 0], [0, 0, 1], [True, False, False], 0.5) == 0.3
    assert choose_threshold([0.9, 0.5, 0.1], [0, 1, 0], [0, 0, 1], [True, False, False], 0.4) == 0.0


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_choose_threshold_is_the_best_allowed_cut(data):
    n = data.draw(st.integers(1, 12))
    draw = lambda s: data.draw(st.lists(s, min_size=n, max_size=n))  # noqa: E731
    conf = data.draw(st.lists(st.floats(0.01, 0.99), min_size=n, max_size=n, unique=True))
    right, unknowable, said = draw(st.booleans()), draw(st.booleans()), draw(st.booleans())
    cap = data.draw(st.sampled_from([0.0, 0.2, 1.0]))
    t = choose_threshold(conf, right, unknowable, said, cap)

    def outcome(t):
        """-> (right answers, known questions answered "I don't know") at threshold t."""
        idk = [s or c < t for c, s in zip(conf, said, strict=True)]
        ok = sum(u if i else r for i, r, u in zip(idk, right, unknowable, strict=True))
        return ok, sum(i and not u for i, u in zip(idk, unknowable, strict=True))

    known = n - sum(unknowable)
    best, known_idk = outcome(t)
    if t > 0:
        assert known_idk <= cap * known
    for cut in [0.0, *sorted(conf), 1.0]:  # no allowed threshold does better
        r, k = outcome(cut + 1e-12)
        assert k > cap * known or r <= best
