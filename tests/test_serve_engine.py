"""The continuous-batching engine (serve/engine.py), driven step by step and through its thread:
requests that join a running batch, leave it, are cancelled or fail get exactly the tokens that
`generate_batch` gives each of them alone (float64, so no near-ties between batch shapes)."""

import threading

import numpy as np
import pytest
from models import small_model

from scratchlm.errors import ServerBusyError
from scratchlm.generate import generate_batch
from scratchlm.sampling import Sampling
from scratchlm.serve.engine import Engine, Job

V, EOS = 29, 3


@pytest.fixture(scope="module", params=[False, True], ids=["fixed-depth", "adaptive-depth"])
def model(request):
    config = dict(
        vocab_size=V,
        d_model=16,
        n_heads=2,
        d_ff=24,
        depth=2,
        max_seq_len=16,  # short: long answers slide their window
        cope_max_pos=6,
        adaptive_depth=request.param,
        max_depth=3,
    )
    return small_model(config, 1, loud=("cope", "head.w", "pos_emb"))  # answers that differ


class Recorder:
    """A job's emit callback: the tokens it got and how it ended."""

    def __init__(self):
        self.tokens, self.reason = [], None
        self.ended = threading.Event()

    def __call__(self, token, reason, logprobs=None):
        assert self.reason is None, "nothing comes after the end"
        if reason is None:
            self.tokens.append(token)
        else:
            self.reason = reason
            self.ended.set()


def job(prompt, sampling, eos_id=EOS):
    recorder = Recorder()
    return Job(prompt, sampling, recorder, eos_id), recorder


def arrive(engine, *jobs):
    """Submit jobs as a client does -> what the worker takes from its inbox for its next step."""
    for j in jobs:
        engine.submit(j)
    return [engine.inbox.get() for _ in jobs]


def expected(model, prompt, sampling, eos_id=EOS):
    """What generate_batch gives the prompt alone (eos_id -1: never stop; these models have no
    tokenizer, so None means that)."""
    return generate_batch(model, [prompt], sampling, eos_id=None if eos_id < 0 else eos_id)[0]


PROMPTS = [[5, 6, 7], [8, 9, 10, 11, 12, 13, 14], [15], [16, 17, 18, 19, 20]]
SETTINGS = [
    Sampling(12),
    Sampling(20, temperature=1.0, seed=4),
    Sampling(9, temperature=0.7, top_k=5, seed=5),
    Sampling(25, temperature=1.2, top_p=0.8, seed=6),
]


def test_jobs_joining_a_running_batch_get_what_they_get_alone(model):
    engine = Engine(model)
    jobs = [
        job(p, s, eos_id=-1 if i == 3 else EOS)
        for i, (p, s) in enumerate(zip(PROMPTS, SETTINGS, strict=True))
    ]
    engine.step(arrive(engine, jobs[0][0]))  # one running alone ...
    engine.step(arrive(engine, jobs[1][0], jobs[2][0]))  # ... two join at once ...
    engine.step([])
    engine.step(arrive(engine, jobs[3][0]))  # ... and one more later
    while engine.rows:
        engine.step([])
    for i, (_, rec) in enumerate(jobs):
        eos = -1 if i == 3 else EOS
        want = expected(model, PROMPTS[i], SETTINGS[i], eos)
        assert rec.tokens == want, i
        assert rec.reason == ("length" if len(want) == SETTINGS[i].max_new_tokens else "stop")
    assert engine.stats() == {"running": 0, "held": 0, "finished": engine.finished}
    assert sum(engine.finished.values()) == 4


def test_a_cancelled_job_leaves_at_the_next_step_and_the_others_go_on(model):
    engine = Engine(model)
    long = Sampling(30)
    (a, rec_a), (b, rec_b) = job(PROMPTS[0], long, -1), job(PROMPTS[1], long, -1)
    engine.step(arrive(engine, a, b))
    engine.step([])
    a.cancel()
    engine.step([])
    assert rec_a.reason == "cancelled" and len(rec_a.tokens) == 2
    assert engine.rows == [b]
    while engine.rows:
        engine.step([])
    assert rec_b.tokens == expected(model, PROMPTS[1], long, -1)
    assert engine.finished == {"cancelled": 1, "length": 1}
    assert engine.stats()["held"] == 0


def test_cancelled_before_it_starts_and_zero_tokens(model):
    engine = Engine(model)
    (a, rec_a), (b, rec_b) = job(PROMPTS[0], Sampling(5)), job(PROMPTS[1], Sampling(0))
    a.cancel()
    engine.step(arrive(engine, a, b))
    assert (rec_a.reason, rec_a.tokens) == ("cancelled", [])
    assert (rec_b.reason, rec_b.tokens) == ("length", [])
    assert not engine.rows


def test_the_worker_thread_serves_concurrent_jobs_and_survives_a_failing_step(model):
    engine = Engine(model)
    engine.start()
    try:
        bad, rec_bad = job([V + 5], Sampling(4))  # an id past the vocabulary: the forward fails
        engine.submit(bad)
        assert rec_bad.ended.wait(30) and rec_bad.reason == "error"
        jobs = [job(p, s) for p, s in zip(PROMPTS, SETTINGS, strict=True)]
        for j, _ in jobs:
            engine.submit(j)
        for i, (_, rec) in enumerate(jobs):
            assert rec.ended.wait(30)
            assert rec.tokens == expected(model, PROMPTS[i], SETTINGS[i])
        beam = Sampling(6, beam=3)
        assert engine.beam_search(PROMPTS[1], beam, EOS).result(30) == expected(
            model, PROMPTS[1], beam
        )
    finally:
        engine.stop()
    assert engine.stats()["held"] == 0


def test_jobs_over_the_limit_are_refused_until_one_ends(model):
    engine = Engine(model, max_jobs=2)
    first = arrive(engine, job(PROMPTS[0], Sampling(1))[0], job(PROMPTS[1], Sampling(1))[0])
    with pytest.raises(ServerBusyError, match="limit"):
        engine.submit(job(PROMPTS[2], Sampling(1))[0])
    engine.step(first)  # both end after their one token
    assert engine.stats()["held"] == 0
    engine.submit(job(PROMPTS[2], Sampling(1))[0])


def test_rows_drawn_together_keep_their_own_generators(model):
    """Rows with the same settings are drawn in one call: each still gets its own seed's tokens,
    and the greedy rows theirs, while rows leave and are replaced by the last one."""
    engine = Engine(model)
    same = [Sampling(n, temperature=1.3, top_k=6, seed=s) for n, s in ((6, 1), (14, 2), (10, 3))]
    settings = [*same, Sampling(9), Sampling(12)]
    jobs = [job(p, s, -1) for p, s in zip(PROMPTS + PROMPTS, settings, strict=False)]
    engine.step(arrive(engine, *(j for j, _ in jobs)))
    while engine.rows:
        engine.step([])
    for (_, rec), prompt, sampling in zip(jobs, PROMPTS + PROMPTS, settings, strict=False):
        assert rec.tokens == expected(model, prompt, sampling, -1)


def test_logprobs_are_the_log_softmax_of_the_logits_drawn_from(model):
    from scratchlm.generate import KVCacheDecoder
    from scratchlm.layers.activations import log_softmax

    got = []
    hot = Sampling(5, temperature=2.0, seed=9)
    engine = Engine(model)
    engine.step([Job(PROMPTS[1], hot, lambda t, r, lp: got.append((t, lp)), -1, top=3)])
    while engine.rows:
        engine.step([])
    tokens = [t for t, _ in got[:-1]]
    assert tokens == expected(model, PROMPTS[1], hot, -1)
    decoder = KVCacheDecoder(model)
    logits = decoder.start([PROMPTS[1]])
    for token, lp in got[:-1]:
        row = log_softmax(logits[0])  # temperature 1: the model's own distribution
        assert lp.logprob == pytest.approx(row[token], abs=1e-12)
        assert lp.top_ids == list(np.argsort(-row)[:3])
        np.testing.assert_allclose(lp.top_logprobs, np.sort(row)[::-1][:3], atol=1e-12)
        logits = decoder.advance([token])
