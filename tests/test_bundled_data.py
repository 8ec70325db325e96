"""The bundled chat set and its held-out twin: template, honesty, coverage and consistency.

`data/chat.json` teaches every topic (a distinct answer) in at least five wordings, small talk,
one fixed reply to questions outside the facts, and multi-turn conversations. `data/chat_val.json`
holds wordings never used in training, so that a score on it measures answering questions in a
user's own words rather than recalling the training questions.
"""

import string
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from scratchlm import chat_format
from scratchlm.examples import load_examples
from scratchlm.tokenizers import WordTokenizer
from scratchlm.tokenizers.base import UNK_ID

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = ("chat.json", "chat_val.json")
OUT_OF_SCOPE = (
    "I'm sorry, I don't know about that. "
    "I only know some facts about science, nature, history and the world."
)
MAX_TOKENS = 80  # the model's context (ModelConfig.max_seq_len), end marker included
MIN_PHRASINGS = 5
MAX_UNK_SHARE = 0.01  # measured: 4 of 3,866 held-out question tokens (0.1%)


def try_parse(text: str) -> list[tuple[str, str]] | None:
    """The (question, answer) turns of `User: q Assistant: a [User: q Assistant: a ...] </s>`,
    or None if `text` does not follow that template exactly."""
    if not text.endswith(" </s>") or text.count("</s>") != 1:
        return None
    body = text.removesuffix(" </s>")
    turns = chat_format.turns(body)
    messages = [m for q, a in turns for m in (("user", q), ("assistant", a))]
    if not turns or not all(q and a for q, a in turns) or chat_format.render(messages) != body:
        return None
    return turns


def parse(text: str) -> list[tuple[str, str]]:
    turns = try_parse(text)
    assert turns is not None, f"not in the chat template: {text}"
    return turns


def norm(text: str) -> str:
    """Case, punctuation and spacing removed: "What's the Sun?" -> "what s the sun"."""
    text = text.lower().translate(str.maketrans(string.punctuation, " " * len(string.punctuation)))
    return " ".join(text.split())


@pytest.fixture(scope="module")
def pretrain() -> list[str]:
    return load_examples(DATA / "pretrain.json")


@pytest.fixture(scope="module")
def examples() -> dict[str, list[str]]:
    return {name: load_examples(DATA / name) for name in FILES}


@pytest.fixture(scope="module")
def turns(examples) -> dict[str, list[list[tuple[str, str]]]]:
    return {name: [parse(text) for text in texts] for name, texts in examples.items()}


@pytest.fixture(scope="module")
def train(turns):
    return turns["chat.json"]


@pytest.fixture(scope="module")
def held_out(turns):
    return turns["chat_val.json"]


@pytest.fixture(scope="module")
def topics(train) -> dict[str, set[str]]:
    """Each topic answer (the answer of a one-turn training example) -> its normalised questions."""
    phrasings = defaultdict(set)
    for conv in train:
        if len(conv) == 1:
            phrasings[conv[0][1]].add(norm(conv[0][0]))
    return phrasings


@pytest.fixture(scope="module")
def tokenizer(pretrain, examples):
    return WordTokenizer.build(pretrain + examples["chat.json"])


# ------------------------------------------------------------------------------------ format


@pytest.mark.parametrize("name", FILES)
def test_template_and_no_duplicates(name, examples):
    assert not [t for t in examples[name] if try_parse(t) is None]
    repeated = [t for t, n in Counter(examples[name]).items() if n > 1]
    assert not repeated


@pytest.mark.parametrize("name", FILES)
def test_examples_fit_the_context(name, examples, tokenizer):
    too_long = [t for t in examples[name] if len(tokenizer.encode(t)) > MAX_TOKENS]
    assert not too_long


def test_sizes(train, held_out):
    def kinds(convs):
        oos = sum(1 for c in convs if len(c) == 1 and c[0][1] == OUT_OF_SCOPE)
        multi = sum(1 for c in convs if len(c) > 1)
        return oos, multi

    assert len(train) >= 1_500 and len(held_out) >= 450
    oos, multi = kinds(train)
    assert oos >= 40 and multi >= 60
    oos, multi = kinds(held_out)
    assert oos >= 15 and multi >= 20


# ----------------------------------------------------------------------------------- honesty


def test_held_out_questions_are_not_training_questions(train, held_out, pretrain):
    seen = {norm(q) for conv in train for q, _ in conv}
    seen |= {norm(fact.removesuffix(" </s>")) for fact in pretrain}
    leaked = [q for conv in held_out for q, _ in conv if norm(q) in seen]
    assert not leaked


def test_held_out_examples_are_not_training_examples(examples):
    assert not set(examples["chat.json"]) & set(examples["chat_val.json"])


# ---------------------------------------------------------------------------------- coverage


def test_every_topic_is_asked_in_several_ways(topics):
    few = {a: sorted(qs) for a, qs in topics.items() if len(qs) < MIN_PHRASINGS}
    assert not few


def test_every_answer_is_a_topic_answer(train, held_out, topics):
    """Follow-ups in conversations, and everything held out, answer with a trained topic."""
    stray = [a for conv in train + held_out for _, a in conv if a not in topics]
    assert not stray


def test_every_topic_has_a_held_out_question(topics, held_out):
    asked = {conv[0][1] for conv in held_out if len(conv) == 1}
    assert not [a for a in topics if a not in asked]


def test_out_of_scope_questions_share_one_fixed_answer(topics):
    assert len(topics[OUT_OF_SCOPE]) >= 40


# ------------------------------------------------------------------------------- consistency


def test_a_question_has_one_answer(train):
    """The same question asked first (without earlier turns) always gets the same answer."""
    answers = defaultdict(set)
    for conv in train:
        answers[norm(conv[0][0])].add(conv[0][1])
    assert not {q: a for q, a in answers.items() if len(a) > 1}


def test_a_follow_up_has_one_answer_in_the_same_conversation(train):
    answers = defaultdict(set)
    for conv in train:
        for i in range(1, len(conv)):
            context = tuple((norm(q), a) for q, a in conv[:i])
            answers[(context, norm(conv[i][0]))].add(conv[i][1])
    assert not [k for k, a in answers.items() if len(a) > 1]


# ---------------------------------------------------------------------------------- wording


def test_held_out_words_are_known_to_the_tokenizer(held_out, tokenizer):
    ids = [i for conv in held_out for q, _ in conv for i in tokenizer.encode(q)]
    unknown = sum(1 for i in ids if i == UNK_ID)
    assert unknown / len(ids) < MAX_UNK_SHARE


def test_some_conversations_change_the_subject(train):
    """A follow-up that is a question also asked alone, with the same answer: trained on these, a
    model answers a new question after earlier turns as it would alone, so the chat can keep its
    history on (chat.py)."""
    alone = {norm(conv[0][0]): conv[0][1] for conv in train if len(conv) == 1}
    switches = [c for c in train if len(c) > 1 and alone.get(norm(c[1][0])) == c[1][1]]
    assert len(switches) >= 100
