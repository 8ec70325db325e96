# New training data, part 4 (after the second measurement): every fact asked from its other end in
# several wordings (as every topic is asked in five or more), wrapped questions around phrases that
# are not the question ("I don't know", "I forgot"), and more follow-ups whose answer is unknown.
import random

from keys import A, conv

PEOPLE = [
    ("Thomas Edison", "Thomas Edison", "make"),
    ("Alexander Graham Bell", "telephone was invented", "invent"),
    ("Alexander Fleming", "Fleming", "discover"),
    ("Tim Berners-Lee", "World Wide Web", "invent"),
    ("the Wright brothers", "Wright brothers", "do"),
    ("Johannes Gutenberg", "Gutenberg", "build"),
    ("Yuri Gagarin", "Gagarin", "do"),
    ("Neil Armstrong", "Neil Armstrong", "do"),
    ("Leonardo da Vinci", "Leonardo", "paint"),
    ("William Shakespeare", "Shakespeare", "write"),
    ("Marie Curie", "Marie Curie", "study"),
    ("Albert Einstein", "Albert Einstein", "discover"),
    ("Isaac Newton", "Isaac Newton", "discover"),
    ("Charles Darwin", "Darwin", "explain"),
    ("Galileo", "Galileo", "use"),
    ("Christopher Columbus", "Columbus", "do"),
    ("Nelson Mandela", "Mandela", "become"),
    ("George Washington", "George Washington", "become"),
    ("Cleopatra", "Cleopatra", "do"),
    ("Julius Caesar", "Julius Caesar", "do"),
]
P_TEMPLATES = [
    "What did {p} {v}?",
    "What is {p} known for?",
    "Why is {p} famous?",
    "Tell me about {p}.",
    "What do you know about {p}?",
    "What is {p} famous for?",
    "Why do people remember {p}?",
    "what did {p} {v}",
    "Who is {p}?",
    "Can you tell me about {p}?",
]
CITIES = [
    ("Canberra", "Australia"),
    ("Madrid", "Spain"),
    ("Tokyo", "Japan"),
    ("Nairobi", "Kenya"),
    ("Ottawa", "Canada"),
    ("Cairo", "Egypt"),
    ("Beijing", "China"),
    ("Berlin is the capital", "Germany"),
    ("Rome is the capital", "Italy"),
    ("Paris is the capital", "France"),
    ("London", "the United Kingdom"),
    ("New Delhi", "India"),
]
C_TEMPLATES = [
    "Which country is {c} the capital of?",
    "Where is {c}?",
    "Tell me about {c}.",
    "What is {c}?",
    "{c} is the capital of which country?",
    "Is {c} a capital city?",
    "What do you know about {c}?",
    "Which country has {c} as its capital?",
    "what is {c}",
    "Where can I find {c}?",
]
YEARS = [
    ("1969", "Neil Armstrong"),
    ("1945", "World War II"),
    ("1492", "Columbus"),
    ("1903", "Wright brothers"),
    ("1215", "Magna Carta"),
    ("1879", "Thomas Edison"),
    ("1876", "telephone was invented"),
    ("1928", "Fleming"),
    ("1961", "Gagarin"),
    ("1994", "Mandela"),
    ("1440", "Gutenberg"),
    ("44 BC", "Julius Caesar"),
]
Y_TEMPLATES = [
    "What happened in {y}?",
    "What is {y} famous for?",
    "Why do people remember {y}?",
    "What is {y} remembered for?",
    "What took place in {y}?",
    "Tell me about the year {y}.",
    "What was special about {y}?",
    "What event was in {y}?",
    "what happened in {y}",
    "Why is {y} important?",
]
THINGS = [
    ("chlorophyll", "chlorophyll"),
    ("penicillin", "Fleming"),
    ("Latin", "Latin"),
    ("Portuguese", "Portuguese"),
    ("bamboo", "Pandas"),
    ("cacao", "Chocolate"),
    ("limestone", "caves form"),
    ("gills", "Fish breathe"),
    ("plasma", "Blood is made"),
    ("platelets", "Blood is made"),
    ("a pouch", "Kangaroos"),
    ("a trunk", "Elephants"),
    ("a chrysalis", "Caterpillars"),
    ("a tadpole", "frog is an amphibian"),
    ("relativity", "Albert Einstein"),
    ("evolution", "Darwin"),
    ("radioactivity", "Marie Curie"),
    ("the Mona Lisa", "Leonardo"),
    ("Romeo and Juliet", "Shakespeare"),
    ("Mesopotamia", "Mesopotamia"),
    ("Giza", "Giza"),
    ("Olympia", "Olympia"),
    ("Lake Baikal", "Lake Baikal"),
    ("Mount Kilimanjaro", "Kilimanjaro"),
    ("Tanzania", "Kilimanjaro"),
    ("Greenland", "Greenland"),
    ("Mount Everest", "Mount Everest"),
    ("Jupiter", "Jupiter is the largest"),
    ("Mercury", "Mercury is the closest"),
    ("Venus", "Venus"),
    ("Saturn", "Saturn"),
    ("Mars", "Red Planet"),
    ("the cheetah", "cheetah"),
    ("the giraffe", "giraffe"),
    ("the blue whale", "blue whale"),
    ("Russia", "Russia is the largest"),
    ("Brazil", "Amazon rainforest"),
    ("the Sahara", "largest desert"),
    ("Antarctica", "coldest place"),
    ("the Pacific", "Pacific Ocean"),
    ("the Nile", "The Nile and"),
    ("Sydney", "Canberra"),
    ("a fault", "Earthquakes happen"),
    ("nectar", "Bees collect"),
    ("yeast", "Bread is made"),
    ("the Milky Way", "Milky Way"),
    ("Egypt's last queen", "Cleopatra"),
    ("the first antibiotic", "Fleming"),
]
T_TEMPLATES = [
    "What is {t}?",
    "Tell me about {t}.",
    "What do you know about {t}?",
    "What is special about {t}?",
    "What is {t} known for?",
    "Why is {t} famous?",
    "what is {t}",
    "Can you tell me about {t}?",
    "What can you say about {t}?",
    "Explain {t} to me.",
]


def reversed_facts(rng, per=5):
    out = []
    for p, k, v in PEOPLE:
        out += [conv(t.format(p=p, v=v), k) for t in rng.sample(P_TEMPLATES, per)]
    for c, _country in CITIES:
        name = A(c).split(" is ")[0]
        out += [conv(t.format(c=name), c) for t in rng.sample(C_TEMPLATES, per)]
    for y, k in YEARS:
        out += [conv(t.format(y=y), k) for t in rng.sample(Y_TEMPLATES, per)]
    for t_, k in THINGS:
        out += [conv(t.format(t=t_), k) for t in rng.sample(T_TEMPLATES, 4)]
    return [x.replace("Who is Galileo?", "Who was Galileo?") for x in out]


DISTRACT = [
    "I don't know much about this, so {q}",
    "{q} I have no idea.",
    "I forgot, {lq}",
    "{q} I don't remember.",
    "My friend does not know this. {q}",
    "{q} Nobody in my class knows.",
    "I never understood this: {q}",
    "{q} I was too shy to ask my teacher.",
    "I keep forgetting. {q}",
    "{q} My book does not say.",
    "I'm not sure about this one. {q}",
    "{q} I looked but could not find it.",
]


def wrapped(rng, n):
    import json
    from pathlib import Path

    from scratchlm import chat_format

    train = [
        chat_format.turns(x) for x in json.loads(Path("/tmp/chatx/chat_orig.json").read_text())
    ]
    small = {
        A(k)
        for k in (
            "Hello! I am",
            "You are welcome",
            "Goodbye!",
            "Great! Ask me",
            "just a program",
            "a computer program that answers",
            "I do not have a name",
            "I can answer simple",
            "built from scratch",
            "IDK",
        )
    }
    pairs = [
        c[0]
        for c in train
        if len(c) == 1 and c[0][1] not in small and c[0][0][:1].isupper() and c[0][0].endswith("?")
    ]
    out = []
    for q, a in rng.sample(pairs, n):
        w = rng.choice(DISTRACT)
        out.append(
            chat_format.render([("user", w.format(q=q, lq=q[0].lower() + q[1:])), ("assistant", a)])
            + " </s>"
        )
    return out


UNKNOWN_AFTER = [
    ("Who was Isaac Newton?", "Isaac Newton"),
    ("Who painted the Mona Lisa?", "Leonardo"),
    ("Who was Marie Curie?", "Marie Curie"),
    ("What is the capital of France?", "Paris is the capital"),
    ("What is the largest planet?", "Jupiter is the largest"),
    ("What is a comet?", "comet is a ball"),
    ("Who invented the telephone?", "telephone was invented"),
    ("What is the tallest mountain?", "Mount Everest"),
    ("Where do kangaroos live?", "Kangaroos"),
    ("What do bees collect?", "Bees collect"),
    ("What is the fastest land animal?", "cheetah"),
    ("Who was Julius Caesar?", "Julius Caesar"),
    ("Why is the sky blue?", "sky looks blue"),
    ("What is the Great Wall of China?", "Great Wall"),
    ("What is the largest ocean?", "Pacific Ocean"),
    ("Who was Cleopatra?", "Cleopatra"),
    ("What is the Eiffel Tower?", "The Eiffel Tower"),
    ("Who was George Washington?", "George Washington"),
]
UNKNOWN_Q = [
    "When was that?",
    "How old was he?",
    "Where was she born?",
    "Who were his parents?",
    "What was her name?",
    "How long did it take?",
    "How much does it weigh?",
    "How many are there?",
    "Is it dangerous?",
    "Who found it?",
    "What happened next?",
    "Did they have kids?",
    "What did he eat?",
    "How far is it?",
    "How do you spell it?",
    "Who else was there?",
    "Was it hard?",
    "What year was it built?",
    "Can I go there?",
    "Why did they do it?",
    "Who named it?",
    "How many people live there?",
    "How did it end?",
]


def unknown_follow_ups(rng, n):
    return [
        conv(q, k, rng.choice(UNKNOWN_Q), "IDK")
        for q, k in (rng.choice(UNKNOWN_AFTER) for _ in range(n))
    ]


def build(seed=4):
    rng = random.Random(seed)
    return reversed_facts(rng) + wrapped(rng, 90) + unknown_follow_ups(rng, 40)
