# New training data, part 3 (after the first measurement): small talk and out-of-scope requests in
# the many registers people type them, written from general chat habits (greetings, thanks,
# goodbyes, acknowledgements, questions about the bot; requests of kinds the model cannot serve).
from keys import conv
H, HOW, T, B, OK, W, N, C, BU = ("Hello! I am", "just a program", "You are welcome", "Goodbye!", "Great! Ask me",
    "a computer program that answers", "I do not have a name", "I can answer simple", "built from scratch")
SMALL = [
 (H, ["hello there", "hi there!", "hey hey!", "hi, anyone home?", "hello bot", "greetings", "good day", "sup",
      "whats up", "hey, what's up?", "hiiii", "hellooo", "hii", "heyy", "hey buddy", "hi friend!", "hello, who is this?",
      "good morning!", "good afternoon", "morning", "evening", "hi again", "ello", "hey you there?", "hello? are you there?"]),
 (HOW, ["how are you", "how are you?", "how r u", "how are you today", "how's it going", "how is it going?",
        "how are things?", "how do you feel?", "are you good?", "how was your day?", "you alright?", "how are you doing"]),
 (T, ["thanks!", "thank you", "thanks so much!", "many thanks!", "thank you very much!", "thx!", "ty", "tnx",
      "thanks mate", "thanks a ton", "thank you, that was helpful", "great, thanks!", "ok thanks", "thanks buddy",
      "cheers!", "much appreciated", "i appreciate it", "thanks for your help!", "thank you so much"]),
 (B, ["bye!", "goodbye!", "see you later!", "see ya later", "bye bye!", "good night!", "gotta go, bye", "catch you later!",
      "talk later", "bye for now!", "ok bye", "i'm leaving", "see you tomorrow!", "farewell!", "so long", "cya"]),
 (OK, ["ok!", "okay", "OK.", "cool", "nice!", "great", "sure", "alright then", "got it", "i see", "makes sense!",
       "fair enough", "sounds great", "good", "perfect!", "awesome!", "neat", "oh ok", "okey", "k", "yep", "true",
       "that's cool", "good to know!", "nice one", "sweet", "oh wow", "hmm ok"]),
 (W, ["what are you", "who are you", "are you a robot", "are you human", "are you a machine?", "are you an ai",
      "are you a person or a bot?", "are you a computer program?", "what kind of bot are you?", "is this a robot?"]),
 (N, ["what's your name", "whats your name?", "do you have a name", "what should i call you", "what are you called?",
      "have you got a name", "name?", "what do i call you?"]),
 (C, ["what can you do", "what can you do?", "what do you know", "what can i ask you", "what are you good at",
      "what do you know about?", "what questions can you answer?", "how can you help?", "what can you help with?"]),
 (BU, ["who made you", "who built you", "how were you made", "who created you", "how were you trained", "who programmed you",
       "how do you work?", "where do you come from?", "what are you trained on?"]),
]
OOS = [
 "write me a poem", "Write a poem about flowers.", "can you write a song", "write a funny story", "Tell me a fairy tale.",
 "make up a story about a cat", "Write a limerick about a dog.", "compose some music", "draw me a dragon",
 "tell me a joke please", "any jokes?", "got a joke for me?", "say something funny", "make me smile", "tell me a pun",
 "write code for a calculator", "How do I learn Python?", "Write a function in JavaScript.", "debug my program",
 "What is Python?", "What is JavaScript?", "What is an app?", "How do I build a robot?", "Make me a website.",
 "What should I do with my life?", "How do I make friends?", "Should I go to the party?", "What should I wear today?",
 "How do I get a job?", "Give me some advice.", "Which school should I choose?", "How can I be happy?",
 "What will the weather be like tomorrow?", "Is it raining now?", "Who won the match?", "What is the score?",
 "What's the news?", "What time is it now?", "What day is it?", "How much is gold worth today?", "What is trending?",
 "Who is playing tonight?", "What is the price of oil?", "When does the store close?",
 "What is my name", "Do you know me?", "Where am I?", "What is my address?", "How tall am I?", "What do I look like?",
 "Who are my parents?", "What is my job?", "When was I born?", "What is my dog's name?",
 "What is the capital of Chile?", "What is the capital of Greece?",
 "What is the capital of Russia?", "Who invented the radio?", "What is the biggest bird?",
 "How many moons does Saturn have?", "Who wrote the Odyssey?", "What is a black swan?", "What is a hashtag?",
 "What is an election?", "What is algebra?", "What is a blockchain?", "What is a cryptocurrency?", "Who is the pope?",
 "How old is the universe?", "What is the fastest car?", "What is the richest country?", "Who was Napoleon Bonaparte?",
 "What is 5 times 7?", "What is 100 minus 37?", "What is half of 90?", "Can you count to a thousand?", "Solve 2x + 3 = 7.",
 "How do you say cat in Spanish?", "What is the French word for water?", "Speak German to me.",
 "Do you like pizza?", "What is your favorite animal?", "Do you have feelings?", "Are you happy?", "Do you dream?",
 "Which is better, cats or dogs?", "What is the best book?", "Who is your best friend?",
 "Send a text to my friend.", "Remind me to call my sister.", "Open the door.", "Order food for me.",
 "Find me a good restaurant.", "Buy a ticket for the train.", "Check my email.", "Wake me up at six.",
]
def build():
    out = [conv(q, k) for k, qs in SMALL for q in qs]
    out += [conv(q, "IDK") for q in OOS]
    return out
