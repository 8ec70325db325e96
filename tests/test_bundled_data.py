"""The bundled chat set and its held-out sets: template, honesty, coverage and consistency.

`data/chat.json` teaches every topic (a distinct answer) in at least five wordings, small talk,
one fixed reply to questions outside the facts, and multi-turn conversations. `data/chat_val.json`
holds wordings never used in training, so that a score on it measures answering questions in a
user's own words rather than recalling the training questions. `data/hard/` (the test) and
`data/calibration/` (for choosing the confidence threshold) hold harder questions by category, each
category with its own honesty rule (`test_held_out_categories_are_not_training_questions`).
"""

import string
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from scratchlm import chat_format
from scratchlm.evaluate import load_categories
from scratchlm.examples import load_examples
from scratchlm.tokenizers import WordTokenizer
from scratchlm.tokenizers.base import UNK_ID
from scratchlm.tokenizers.word import split_words

DATA = Path(__file__).resolve().parents[1] / "data"
FILES = ("chat.json", "chat_val.json")
SPLITS = ("hard", "calibration")  # the categories' test set and calibration set
CATEGORIES = ("follow_up", "form", "other_direction", "out_of_scope", "small_talk", "wrapped")
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


@pytest.fixture(scope="module")
def categories() -> dict[str, dict[str, list[list[tuple[str, str]]]]]:
    """split -> category -> its conversations (the last question is the one scored)."""
    return {
        split: {k: [parse(t) for t in v] for k, v in load_categories(DATA / split).items()}
        for split in SPLITS
    }


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


def test_every_topic_has_a_held_out_question(topics, held_out, categories):
    asked = {conv[0][1] for conv in held_out if len(conv) == 1}
    asked |= {c[-1][1] for convs in categories["hard"].values() for c in convs}
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


# ---------------------------------------------------------------------- the held-out categories


def test_categories_and_sizes(categories):
    for split, minimum in (("hard", 50), ("calibration", 20)):
        assert tuple(categories[split]) == CATEGORIES
        assert all(len(convs) >= minimum for convs in categories[split].values())


@pytest.mark.parametrize("split", SPLITS)
def test_category_files_follow_the_template(split):
    for texts in load_categories(DATA / split).values():
        assert not [t for t in texts if try_parse(t) is None]
        assert len(set(texts)) == len(texts)


def _scored(convs):
    """(the normalised last question, the answer before it or None) of each conversation."""
    return [(norm(c[-1][0]), c[-2][1] if len(c) > 1 else None) for c in convs]


@pytest.mark.parametrize("split", SPLITS)
def test_held_out_categories_are_not_training_questions(split, categories, train, pretrain):
    """Form: the question as typed is no training question (its damage is what is tested: the
    words may be a training question's). Follow-ups: no training conversation asks the same
    follow-up after the same answer, nor the same questions in the same order. Every other
    category: the question, normalised, is no training question and no pre-training fact."""
    typed = {q for conv in train for q, _ in conv}
    seen = {norm(q) for conv in train for q, _ in conv}
    seen |= {norm(fact.removesuffix(" </s>")) for fact in pretrain}
    follow = {(norm(c[i][0]), c[i - 1][1]) for c in train for i in range(1, len(c))}
    prefixes = {tuple(norm(q) for q, _ in c[: i + 1]) for c in train for i in range(len(c))}
    leaked = []
    for name, convs in categories[split].items():
        for conv in convs:
            q = conv[-1][0]
            if name == "form":
                leaked += [q] if q in typed else []
            elif name == "follow_up":
                key = tuple(norm(x) for x, _ in conv)
                leaked += [q] if key in prefixes or _scored([conv])[0] in follow else []
            else:
                leaked += [q] if norm(q) in seen else []
    assert not leaked


def test_test_and_calibration_sets_do_not_share_questions(categories):
    asked = {k: set(_scored(v)) for k, v in categories["calibration"].items()}
    shared = [x for k, v in categories["hard"].items() for x in _scored(v) if x in asked[k]]
    assert not shared


def test_form_questions_are_damaged(categories, tokenizer):
    """Each form question has a word the cased vocabulary lacks (capitals, a misspelling), a
    lower-case start or no single final . ? ! -- else it would test nothing."""

    def damaged(q: str) -> bool:
        unknown = any(tokenizer.encode(w) == [UNK_ID] for w in split_words(q))
        ending = q[-1:] in ".?!" and q[-2:-1] not in ".?!"
        return unknown or q[0].islower() or not ending

    for split in SPLITS:
        assert all(damaged(c[-1][0]) for c in categories[split]["form"])


def test_held_out_answers_are_topic_answers(categories, topics):
    stray = [a for s in SPLITS for v in categories[s].values() for c in v for _, a in c]
    assert not [a for a in stray if a not in topics]


def test_out_of_scope_expects_the_fixed_reply(categories):
    for split in SPLITS:
        assert {c[-1][1] for c in categories[split]["out_of_scope"]} == {OUT_OF_SCOPE}
        follow = [c[-1][1] for c in categories[split]["follow_up"]]
        assert 0.2 < follow.count(OUT_OF_SCOPE) / len(follow) < 0.6  # both kinds of follow-up
