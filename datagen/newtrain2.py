# New training data, part 2: follow-ups of many shapes, and known questions wrapped in longer sentences.
import json
import random
from pathlib import Path

from keys import IDK, A, conv

from scratchlm import chat_format

CAPITALS = [
    ("Spain", "Madrid"),
    ("Germany", "Berlin is the capital"),
    ("France", "Paris is the capital"),
    ("Italy", "Rome is the capital"),
    ("Japan", "Tokyo"),
    ("China", "Beijing"),
    ("India", "New Delhi"),
    ("Kenya", "Nairobi"),
    ("Egypt", "Cairo"),
    ("Canada", "Ottawa"),
    ("Australia", "Canberra"),
    ("the United Kingdom", "London"),
    ("the United States", "Washington, D.C."),
]
SHAPES = [
    "And {c}?",
    "What about {c}?",
    "How about {c}?",
    "{c}?",
    "and {lc}",
    "what about {lc}?",
    "and {lc}?",
    "And for {c}?",
    "Same for {c}?",
    "and the capital of {lc}",
    "{lc}",
    "And {c}, please?",
    "how about {lc}",
    "And of {c}?",
    "ok and {c}?",
    "what about {c} then",
]
FIRST = [
    "What is the capital of {c}?",
    "What's the capital of {c}?",
    "capital of {lc}?",
    "Which city is the capital of {c}?",
    "Tell me the capital of {c}.",
    "what is the capital of {lc}",
]


def capital_chains(rng, n):
    out = []
    for _ in range(n):
        (c1, k1), (c2, k2) = rng.sample(CAPITALS, 2)
        lc1, lc2 = c1.lower(), c2.lower()
        q1 = rng.choice(FIRST).format(c=c1, lc=lc1)
        q2 = rng.choice(SHAPES).format(c=c2, lc=lc2)
        out.append(conv(q1, k1, q2, k2))
    return out


# "Is X one?" after a category, with its answer
MEMBERS = [
    ("What is a reptile?", "reptile is a cold", ["snake", "lizard"], "reptile is a cold"),
    ("What is a reptile?", "reptile is a cold", ["frog"], "frog is an amphibian"),
    ("What is a mammal?", "mammal is a warm", ["whale"], "Yes, whales"),
    ("What is a mammal?", "mammal is a warm", ["bat"], "Bats are the only"),
    ("What is an insect?", "insect has six", ["spider"], "spider is a small animal"),
    ("What is a fruit?", "fruit is the part", ["tomato"], "Yes, a tomato"),
    ("What is a star?", "star is a ball", ["Sun"], "The Sun is a star"),
    ("What is a metal?", "metal is a shiny", ["iron", "copper"], "metal is a shiny"),
    ("What is a bird?", "IDK", ["penguin"], "A penguin is a bird"),
    ("What is an amphibian?", "IDK", ["frog"], "frog is an amphibian"),
]
FIRSTS = {
    "What is a reptile?": [
        "Tell me what a reptile is.",
        "what are reptiles",
        "What's a reptile?",
        "Explain reptiles.",
    ],
    "What is a mammal?": [
        "What are mammals?",
        "Tell me what a mammal is.",
        "what's a mammal",
        "Explain what mammals are.",
    ],
    "What is an insect?": [
        "What are insects?",
        "Tell me about insects.",
        "how many legs do insects have",
        "Explain insects.",
    ],
    "What is a fruit?": [
        "What are fruits?",
        "Tell me what a fruit is.",
        "what counts as a fruit",
        "Explain fruit to me.",
    ],
    "What is a star?": [
        "What are stars?",
        "Tell me what a star is.",
        "what are stars made of",
        "Explain stars.",
    ],
    "What is a metal?": [
        "What are metals?",
        "Tell me what a metal is.",
        "what's a metal",
        "Explain metals.",
    ],
    "What is a bird?": ["What are birds?", "Tell me what a bird is.", "Explain birds."],
    "What is an amphibian?": [
        "What are amphibians?",
        "Tell me what an amphibian is.",
        "Explain amphibians.",
    ],
}
ONE = [
    "Is a {m} one?",
    "Is a {m} one too?",
    "What about a {m}?",
    "And a {m}?",
    "is a {m} one",
    "Does a {m} count?",
    "Are {m}s one?",
    "So is a {m} one?",
    "And is a {m} one?",
    "a {m}?",
]


def member_chains(rng):
    out = []
    for _, k1, members, k2 in MEMBERS:
        first = next(f for f, kk, *_ in MEMBERS if kk == k1)
        for m in members:
            for shape in rng.sample(ONE, 3):
                q1 = rng.choice(FIRSTS[first])
                q2 = shape.format(m=m).replace("a Sun", "the Sun").replace("Suns", "the Sun")
                out.append(conv(q1, k1, q2, k2))
    return out


# "Why?" after an answer that holds its reason: the same answer; after one without a reason: I don't know.
WHY_KNOWN = [
    ("What color is the sky?", "sky looks blue"),
    ("Which planet is the hottest?", "Venus"),
    ("Does ice float?", "Ice floats"),
    ("What color are leaves?", "chlorophyll"),
    ("Is sea water salty?", "ocean is salty"),
    ("Do we need sleep?", "We need sleep"),
    ("Which planet is red?", "Red Planet"),
    ("Do we see lightning before thunder?", "Light travels faster"),
    ("Does iron rust?", "Iron rusts"),
    ("Do animals hibernate?", "Some animals hibernate"),
    ("Do coats keep us warm?", "Coats trap"),
]
WHY_UNKNOWN = [
    ("What is the largest ocean?", "Pacific Ocean"),
    ("Which is the largest planet?", "Jupiter is the largest"),
    ("What is the largest country?", "Russia is the largest"),
    ("What is the coldest place on Earth?", "coldest place"),
    ("Which lake is the deepest?", "Lake Baikal"),
    ("Who was the first US president?", "George Washington"),
    ("Which is the largest island?", "Greenland"),
    ("How many planets are there?", "eight planets"),
    ("What is the capital of Japan?", "Tokyo"),
    ("What is the largest cat?", "Tigers"),
    ("Which countries have the most people?", "India and China"),
    ("What is the largest continent?", "Asia is the largest"),
    ("Who was the last queen of Egypt?", "Cleopatra"),
    ("When did World War II end?", "World War II"),
    ("What is the biggest animal?", "blue whale"),
    ("Which is the closest planet to the Sun?", "Mercury is the closest"),
]
WHY = ["Why?", "why", "Why is that?", "But why?", "how come?", "Why so?"]
# Follow-ups about details it does not know, after a known answer.
DETAIL = [
    (
        "Who was Isaac Newton?",
        "Isaac Newton",
        [
            "When was he born?",
            "Where did he live?",
            "Did he have a wife?",
            "How old was he when he died?",
        ],
    ),
    (
        "Who was Albert Einstein?",
        "Albert Einstein",
        ["When was he born?", "Where did he work?", "Was he married?"],
    ),
    (
        "Who was Charles Darwin?",
        "Darwin",
        ["When did he live?", "Where was he born?", "What did he look like?"],
    ),
    ("Who was Galileo?", "Galileo", ["When was he born?", "Where did he die?"]),
    (
        "Who was Nelson Mandela?",
        "Mandela",
        ["How old was he?", "Where was he born?", "Did he have children?"],
    ),
    ("Who was Julius Caesar?", "Julius Caesar", ["Where was he born?", "Did he have children?"]),
    ("Who was Cleopatra?", "Cleopatra", ["Who was her husband?", "How did she die?"]),
    (
        "Who invented the light bulb?",
        "Thomas Edison",
        ["When was he born?", "Where did he live?", "What else did he make?"],
    ),
    ("Who discovered penicillin?", "Fleming", ["Where was he from?", "How did he find it?"]),
    (
        "Who was Christopher Columbus?",
        "Columbus",
        ["Where was he born?", "What was his ship called?"],
    ),
    ("Who was Yuri Gagarin?", "Gagarin", ["How long was he in space?", "Where was he from?"]),
    (
        "What is the capital of Japan?",
        "Tokyo",
        ["How many people live there?", "What language do they speak there?"],
    ),
    (
        "What is the capital of Spain?",
        "Madrid",
        ["How big is it?", "What is the weather like there?"],
    ),
    (
        "What is the capital of Kenya?",
        "Nairobi",
        ["How many people live there?", "What do people eat there?"],
    ),
    (
        "What is the capital of Italy?",
        "Rome is the capital",
        ["How old is it?", "What is the best food there?"],
    ),
    (
        "What is the largest country?",
        "Russia is the largest",
        ["What is its capital?", "How many people live there?"],
    ),
    (
        "What is the tallest mountain?",
        "Mount Everest",
        ["Who climbed it first?", "Where exactly is it?"],
    ),
    ("What is the largest island?", "Greenland", ["Is it cold there?", "What is its capital?"]),
    (
        "What is the tallest animal?",
        "giraffe",
        ["How tall is it?", "Where do they live?", "What do they eat?"],
    ),
    ("What is the fastest land animal?", "cheetah", ["Where does it live?", "What does it eat?"]),
    (
        "What is the largest planet?",
        "Jupiter is the largest",
        ["How many moons does it have?", "How far away is it?"],
    ),
    ("What is the Eiffel Tower?", "The Eiffel Tower", ["When was it built?", "Who built it?"]),
    (
        "What is the Great Wall of China?",
        "Great Wall",
        ["When was it built?", "Can you see it from space?"],
    ),
    (
        "Who painted the Mona Lisa?",
        "Leonardo",
        ["Where is the painting now?", "How much is it worth?"],
    ),
    ("Who wrote Romeo and Juliet?", "Shakespeare", ["When did he die?", "Where was he born?"]),
    (
        "What is a black hole?",
        "black hole",
        ["Where is the nearest one?", "What happens inside it?"],
    ),
    ("What is DNA?", "DNA is a long", ["Who discovered it?", "How long is it?"]),
    (
        "What are dinosaurs?",
        "Dinosaurs lived",
        ["Which one was the biggest?", "Why did they die out?"],
    ),
    ("What is a comet?", "comet is a ball", ["When is the next one?", "How big are they?"]),
    ("What is lava?", "Lava is melted", ["Is it dangerous?", "How hot is it?"]),
    ("How are you?", "just a program", ["What is your favorite color?"]),
]
MORE = [
    "Tell me more.",
    "tell me more",
    "Can you say more?",
    "What else?",
    "anything else?",
    "Tell me more about it.",
]
SUPERLATIVE_CHAINS = [
    [
        ("Which animal is the fastest on land?", "cheetah"),
        ("And the tallest?", "giraffe"),
        ("And the biggest ever?", "blue whale"),
    ],
    [("What is the largest land animal?", "Elephants"), ("And the tallest one?", "giraffe")],
    [("What is the largest cat?", "Tigers"), ("And the fastest animal on land?", "cheetah")],
    [
        ("Which is the biggest ocean?", "Pacific Ocean"),
        ("And the biggest island?", "Greenland"),
        ("And the biggest continent?", "Asia is the largest"),
    ],
    [
        ("What is the biggest country?", "Russia is the largest"),
        ("And the biggest desert?", "largest desert"),
    ],
    [("What is the coldest place?", "coldest place"), ("and the largest island?", "Greenland")],
    [
        ("Which planet is the biggest?", "Jupiter is the largest"),
        ("And the hottest?", "Venus"),
        ("And the closest to the Sun?", "Mercury is the closest"),
    ],
    [
        ("Which planet is the smallest?", "Mercury is the closest"),
        ("and the biggest?", "Jupiter is the largest"),
    ],
    [("Which planet has rings?", "Saturn"), ("And which one is red?", "Red Planet")],
    [
        ("What is the highest mountain?", "Mount Everest"),
        ("And the highest in Africa?", "Kilimanjaro"),
    ],
    [("What is the longest river?", "The Nile and"), ("And the deepest lake?", "Lake Baikal")],
    [
        ("What is the deepest lake on Earth?", "Lake Baikal"),
        ("and the longest rivers?", "The Nile and"),
    ],
    [
        ("Who invented the telephone?", "telephone was invented"),
        ("And the light bulb?", "Thomas Edison"),
        ("And the web?", "World Wide Web"),
    ],
    [("Who made the first light bulb?", "Thomas Edison"), ("and the printing press?", "Gutenberg")],
    [
        ("Who invented the printing press?", "Gutenberg"),
        ("What about the telephone?", "telephone was invented"),
    ],
    [
        ("Who flew the first airplane?", "Wright brothers"),
        ("And who first went to space?", "Gagarin"),
        ("And who walked on the Moon?", "Neil Armstrong"),
    ],
    [
        ("Who was Isaac Newton?", "Isaac Newton"),
        ("And Albert Einstein?", "Albert Einstein"),
        ("and Darwin?", "Darwin"),
    ],
    [("Who was Marie Curie?", "Marie Curie"), ("What about Galileo?", "Galileo")],
    [("Who was Julius Caesar?", "Julius Caesar"), ("And Cleopatra?", "Cleopatra")],
    [
        ("How many days are in a week?", "seven days in a week"),
        ("And in a year?", "A year has 365"),
    ],
    [
        ("How many minutes are in an hour?", "sixty minutes"),
        ("And hours in a day?", "twenty-four hours"),
    ],
    [
        ("How many months are in a year?", "twelve months"),
        ("and days in a week?", "seven days in a week"),
    ],
    [
        ("At what temperature does water boil?", "Water boils"),
        ("And when does it freeze?", "Water freezes"),
    ],
    [
        ("What is lightning?", "Lightning is a giant"),
        ("Why do we hear thunder after it?", "Light travels faster"),
    ],
    [("What is thunder?", "Thunder is the sound"), ("And lightning?", "Lightning is a giant")],
    [
        ("What is water made of?", "two hydrogen atoms"),
        ("And what is air made of?", "Air is mostly"),
    ],
    [("What is a fruit?", "fruit is the part"), ("And a vegetable?", "vegetable is a part")],
    [
        ("How do plants make food?", "photosynthesis"),
        ("Can mushrooms do that?", "mushrooms are fungi"),
    ],
    [
        ("What is the capital of Germany?", "Berlin is the capital"),
        ("When did the Berlin Wall fall?", "Berlin Wall"),
    ],
    [
        ("What is the capital of France?", "Paris is the capital"),
        ("What is the tall tower there?", "The Eiffel Tower"),
    ],
    [("What is the capital of Egypt?", "Cairo"), ("Who built the pyramids there?", "pyramids")],
    [
        ("Where do kangaroos live?", "Kangaroos"),
        ("What is the capital of that country?", "Canberra"),
    ],
    [
        ("What language do they speak in Brazil?", "Portuguese"),
        ("And what forest is there?", "Amazon rainforest"),
    ],
    [("What is the Sun?", "The Sun is a star"), ("How far away is it?", "150 million")],
    [
        ("What is the Moon?", "natural satellite"),
        ("Why does it change shape?", "Moon seems to change"),
    ],
]


def follow_ups(rng):
    out = capital_chains(rng, 70) + member_chains(rng)
    for q, k in WHY_KNOWN:
        out.append(conv(q, k, rng.choice(WHY), k))
    for q, k in WHY_UNKNOWN:
        out.append(conv(q, k, rng.choice(WHY), "IDK"))
    for q, k, details in DETAIL:
        for d in details:
            out.append(conv(q, k, d, "IDK"))
    for q, k, _ in rng.sample(DETAIL, 12):
        out.append(conv(q, k, rng.choice(MORE), "IDK"))
    for chain in SUPERLATIVE_CHAINS:
        out.append(conv(*[x for pair in chain for x in pair]))
    return out


# Known questions inside longer sentences: hand-written ones, and training questions inside wrappers.
INDIRECT = [
    ("tell me why the sky is blue please", "sky looks blue"),
    ("I want to know how volcanoes form.", "Volcanoes form"),
    ("can you tell me what a glacier is", "glacier is a huge"),
    ("I'd like to know why we have seasons.", "seasons because"),
    ("please explain how rain forms", "Rain falls"),
    ("I have no idea what a galaxy is, can you explain?", "galaxy is a huge group"),
    ("my homework asks what the largest ocean is", "Pacific Ocean"),
    ("I need to find out who invented the telephone", "telephone was invented"),
    ("We have to write about how bees make honey.", "Honey is made by bees"),
    ("explain to me what gravity is", "Gravity is the force"),
    ("Do you know how many continents there are?", "seven continents"),
    ("I always forget what the capital of Canada is.", "Ottawa"),
    ("I am trying to remember who painted the Mona Lisa.", "Leonardo"),
    ("My sister wants to know why the ocean is salty.", "ocean is salty"),
    ("our class is learning what photosynthesis is", "photosynthesis"),
    ("I need to know what DNA is for a test.", "DNA is a long"),
    ("can you explain how a rainbow forms", "rainbow appears"),
    ("I wonder how birds fly.", "Birds fly"),
    ("Please tell me what the tallest mountain is.", "Mount Everest"),
    ("I want to learn what an atom is.", "atom is the smallest"),
    ("Could you tell me why iron rusts?", "Iron rusts"),
    ("I read about tides and want to know what causes them.", "Tides are caused"),
    ("Our teacher asked who the first person on the Moon was.", "Neil Armstrong"),
    ("help me understand what erosion is", "Erosion is"),
    ("I need a simple answer: what is a cell?", "cell is the smallest"),
    ("my dad asked me what a comet is", "comet is a ball"),
    ("I can't remember how many bones we have.", "206 bones"),
    ("tell me what the biggest planet is", "Jupiter is the largest"),
    ("I want to understand how earthquakes happen", "Earthquakes happen"),
    ("please tell me what a black hole is", "black hole"),
    ("for my project I need to know what a habitat is", "habitat"),
    ("I'm curious what causes thunder.", "Thunder is the sound"),
    ("I would love to know why leaves are green.", "chlorophyll"),
    ("my friend asked me what the Milky Way is", "Milky Way"),
    ("I don't know why we need sleep, do you?", "We need sleep"),
    ("Tell me please, how do caves form?", "caves form"),
    ("For a quiz I need the capital of Egypt.", "Cairo"),
    ("we are learning about magnets, what is a magnet", "magnet is an object"),
    ("Can you explain what friction is to me?", "Friction is"),
    ("I was told to ask you what a food chain is.", "food chain"),
]
WRAPPERS = [
    "Quick question: {q}",
    "{q} I need it for school.",
    "Hi! {q}",
    "My teacher asked us this: {q}",
    "{q} Thanks!",
    "Can you help me? {q}",
    "Sorry to bother you. {q}",
    "I have always wanted to know this. {q}",
    "hey, {lq}",
    "{q} My little brother asked me.",
    "Please answer this: {q}",
    "{q} It is for my homework.",
    "I have a question for you. {q}",
    "ok so {lq}",
    "Here is my question: {q}",
    "{q} I really want to know.",
    "Hello. {q}",
    "i need help. {lq}",
    "{q} Can you tell me?",
    "So, {lq}",
    "Let me ask you something. {q}",
    "{q} We are learning about it in class.",
    "Tell me this: {q}",
    "{q} Just curious.",
    "Help! {q}",
    "One more question: {q}",
    "My friend says I am wrong. {q}",
    "{q} Please be quick.",
    "I am doing a project. {q}",
    "Good morning! {q}",
]


def wrapped(rng, n):
    train = [
        chat_format.turns(x)
        for x in json.loads(Path("/work/wt/chat/src/scratchlm/bundled/chat.json").read_text())
    ]
    pairs = [
        c[0]
        for c in train
        if len(c) == 1 and c[0][1] != IDK and c[0][0][:1].isupper() and c[0][0].endswith("?")
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
        )
    }
    pairs = [p for p in pairs if p[1] not in small]
    out = [conv(q, k) for q, k in INDIRECT]
    for q, a in rng.sample(pairs, n):
        w = rng.choice(WRAPPERS)
        text = w.format(q=q, lq=q[0].lower() + q[1:])
        out.append(chat_format.render([("user", text), ("assistant", a)]) + " </s>")
    return out


def build(seed=21):
    rng = random.Random(seed)
    return follow_ups(rng) + wrapped(rng, 160)
