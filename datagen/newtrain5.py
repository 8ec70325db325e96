# New training data, part 5 (issue 21's small talk, after it measured 73 % on data/hard): small
# talk written from general chat habits, NOT from the held-out misses. Each kind of small talk is
# a list of core phrases in the registers people type (slang, shorthand, full sentences), each
# drawn with and without a friendly word before or after it and with different punctuation, so
# every phrase's words are seen often enough to be in the vocabulary (the demo keeps words seen at
# least twice). The small-talk questions of the first data/hard (retired as a test set when a
# fresh one, written by another session that never saw the training data, replaced it) are
# added as they were. Small talk also comes after an answer ("ok cool", "thanks, bye"): drawn
# after the shipped set's own one-turn and two-turn conversations, and before a question.
import json
import random
from pathlib import Path

from keys import BU, HOW, OK, SMALL_TALK, B, C, H, N, T, W, conv

from scratchlm import chat_format

CORE = {
    H: [
        "hi",
        "hello",
        "hey",
        "hiya",
        "howdy",
        "yo",
        "heya",
        "hey there",
        "hi there",
        "hello there",
        "hello hello",
        "hi bot",
        "hey bot",
        "hello robot",
        "good morning",
        "good afternoon",
        "good evening",
        "morning all",
        "greetings",
        "salutations",
        "sup",
        "wassup",
        "what's up",
        "whats good",
        "hey, anybody there?",
        "is anyone there?",
        "hello, can you hear me?",
        "knock knock, anyone home?",
        "hi, i am new here",
        "hello, nice to meet you",
        "nice to meet you",
        "pleased to meet you",
        "long time no see",
        "hey, i'm back",
        "ahoy",
        "hi, is this thing on?",
    ],
    HOW: [
        "how are you",
        "how are you doing",
        "how are you today",
        "how r u",
        "how ru",
        "how u doing",
        "how you doin",
        "how is life",
        "how's life",
        "how is your day going",
        "how has your day been",
        "having a nice day?",
        "are you having fun?",
        "how do you feel today",
        "are you feeling okay",
        "are you ok",
        "are you well",
        "everything good with you?",
        "how's everything",
        "how are things with you",
        "how goes it",
        "what's new with you",
        "are you happy",
        "are you tired",
        "are you busy",
        "do you have feelings",
        "how have you been",
    ],
    T: [
        "thanks",
        "thank you",
        "thank u",
        "thanks a lot",
        "thanks so much",
        "thank you so much",
        "thanks a million",
        "thanks heaps",
        "thx",
        "thnx",
        "thanx",
        "ty",
        "tysm",
        "ty so much",
        "many thanks",
        "cheers",
        "cheers mate",
        "much obliged",
        "appreciate it",
        "i appreciate that",
        "i really appreciate your help",
        "that was helpful, thank you",
        "you helped a lot, thanks",
        "thanks for the answer",
        "thanks for explaining",
        "thank you kindly",
        "you are a star, thanks",
        "nice one, thanks",
    ],
    B: [
        "bye",
        "goodbye",
        "bye bye",
        "byee",
        "see you",
        "see ya",
        "see you later",
        "see you soon",
        "cya",
        "later",
        "laters",
        "catch you later",
        "talk to you later",
        "ttyl",
        "good night",
        "night night",
        "farewell",
        "so long",
        "take care",
        "have a good one",
        "i have to go now",
        "i'm off",
        "i am leaving now",
        "gotta go",
        "got to run, bye",
        "that's all for today",
        "i'm done for now, bye",
        "until next time",
    ],
    OK: [
        "ok",
        "okay",
        "okie",
        "k",
        "kk",
        "alright",
        "all right",
        "cool",
        "very cool",
        "nice",
        "neat",
        "great",
        "awesome",
        "sweet",
        "perfect",
        "got it",
        "gotcha",
        "i see",
        "understood",
        "makes sense",
        "that makes sense",
        "sounds good",
        "fair enough",
        "interesting",
        "how interesting",
        "wow",
        "oh wow",
        "good to know",
        "that helps",
        "that's useful",
        "i learned something",
        "fascinating",
        "oh really",
        "no way",
        "lol",
        "haha",
        "yep",
        "yes",
        "sure",
    ],
    W: [
        "what are you",
        "who are you",
        "are you a robot",
        "are you a bot",
        "are you an ai",
        "are you a machine",
        "are you a computer",
        "are you human",
        "are you a real person",
        "are you alive",
        "is this a person or a bot",
        "am i talking to a human",
        "am i talking to a computer",
        "what kind of thing are you",
        "what exactly are you",
        "are you chatgpt",
        "are you a language model",
        "tell me about yourself",
        "what am i talking to",
        "explain what you are",
    ],
    N: [
        "what is your name",
        "what's your name",
        "whats ur name",
        "do you have a name",
        "have you got a name",
        "what should i call you",
        "what can i call you",
        "how should i call you",
        "what do people call you",
        "what are you called",
        "tell me your name",
        "your name?",
        "who am i speaking with",
        "may i know your name",
        "got a name?",
        "what do i call you",
    ],
    C: [
        "what can you do",
        "what do you do",
        "what are you good at",
        "what do you know",
        "what can you help me with",
        "how can you help me",
        "can you help me",
        "what questions can i ask",
        "what can i ask you",
        "what topics do you know",
        "what subjects do you cover",
        "what are you able to answer",
        "what kind of questions do you answer",
        "help",
        "i need help",
        "what is this for",
        "how does this work",
        "what are your skills",
        "what are you for",
    ],
    BU: [
        "who made you",
        "who built you",
        "who created you",
        "who programmed you",
        "who trained you",
        "who wrote you",
        "who designed you",
        "how were you made",
        "how were you built",
        "how were you trained",
        "how did you learn",
        "where do you come from",
        "where did you come from",
        "what are you made of",
        "what were you trained on",
        "who is your creator",
        "who owns you",
        "when were you made",
    ],
}
BEFORE = ["", "", "", "hey, ", "oh, ", "ok ", "so ", "um ", "well, ", "hi, "]
AFTER = ["", "", "", " bot", " buddy", " friend", " mate", ":)", " lol", " then", " please"]
ENDS = ["", "", "!", "?", ".", "!!", "..."]


def typed(rng, phrase, key):
    """`phrase` as someone might type it: a friendly word before or after, some punctuation."""
    before = rng.choice(BEFORE)
    # a greeting before a greeting, or "hi," before "bye", says two things at once
    if key in (H, B) and before.startswith(("hey", "hi")):
        before = ""
    after = rng.choice(AFTER) if key not in (C, N) else ""
    text = before + phrase + after + rng.choice(ENDS)
    return text[0].upper() + text[1:] if rng.random() < 0.4 else text


def in_conversations(rng, shipped):
    """Small talk after the shipped set's one-turn and two-turn conversations (mostly thanks,
    acknowledgements and goodbyes, which is what follows an answer), and greetings before one."""
    chats = [chat_format.turns(x) for x in shipped]
    facts = [t for t in chats if len(t) == 1 and not any(k in t[0][1] for k in SMALL_TALK)]
    pairs = [t for t in chats if len(t) == 2]
    after = [T, T, OK, OK, OK, B, B, HOW, W, C, N, BU]
    out = []
    for n, first in enumerate(rng.sample(facts, 300) + rng.sample(pairs, 100)):
        key = after[n % len(after)]
        out.append(render([*first, (typed(rng, rng.choice(CORE[key]), key), key)]))
    for first in rng.sample(facts, 60):
        key = rng.choice([H, H, HOW])
        out.append(render([(typed(rng, rng.choice(CORE[key]), key), key), *first]))
    return out


def render(turns):
    """(question, answer or the piece of one) turns -> a chat string."""
    return conv(*[x for turn in turns for x in turn])


def build(shipped):
    rng = random.Random(5)
    out = []
    for key, phrases in CORE.items():
        for phrase in phrases:
            out.append(conv(phrase, key))
            out += [conv(typed(rng, phrase, key), key) for _ in range(2)]
    out += in_conversations(rng, shipped)
    retired = Path(__file__).parent / "retired_small_talk.json"
    return list(dict.fromkeys(out)) + json.loads(retired.read_text())
