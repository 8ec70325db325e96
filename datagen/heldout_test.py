# The harder held-out TEST set, written from the topic answers, not from the training questions
# (the questions and answer keys: heldout_test.json).
from keys import held_out


def build():
    return held_out("heldout_test")
