"""Sentences to speak: a small English grammar that makes as many distinct lines as needed.

The speech dataset (:mod:`imucap.datasets.speech`) needs many texts, and no text corpus is
downloaded. This grammar writes plain English sentences from our own word lists: statements,
questions, requests, exclamations, lists and numbers, from two words to about twenty. The words
were chosen for the shapes of the mouth they need, so that every viseme class turns up often
and in many neighbourhoods: lip closures (p, b, m), lip-teeth contacts (f, v), tongue-teeth
(th), rounding (oo, o, w, sh, ch), spreading (ee, i) and open vowels (a, ah, aw).

Held-out texts. :func:`sentences` is deterministic in its seed; the dataset draws its training
lines and its test lines from different seeds and drops any test line that also appears in
training, so a held-out score is on sentences the model never heard.
"""

from __future__ import annotations

import random

__all__ = ["sentences"]

_NAMES = ("Maya", "Bob", "Fiona", "Theo", "Ruth", "Victor", "Paula", "Owen", "Beth", "Mike",
          "Olive", "Wendy", "Hugo", "Sophie", "Jim", "Ava", "Ben", "Martha", "Luke", "Eve")
_NOUNS = ("baby", "boat", "apple", "moon", "book", "bottle", "map", "phone", "coffee", "voice",
          "window", "father", "mother", "brother", "teacher", "path", "mouth", "tooth", "wave",
          "fish", "shoe", "cheese", "bread", "soup", "pool", "room", "movie", "film", "piano",
          "puppy", "feather", "forest", "valley", "river", "bridge", "morning", "evening",
          "weather", "thunder", "theatre", "office", "museum", "market", "garden", "music",
          "picture", "pepper", "bubble", "moment", "number", "video", "office", "jeep",
          "table", "chair", "kitchen", "window", "beach", "shop", "ship", "queen", "king")
_ADJECTIVES = ("big", "blue", "bumpy", "warm", "smooth", "thin", "thick", "happy", "heavy",
               "purple", "fuzzy", "famous", "brave", "cheap", "deep", "sweet", "sour", "soft",
               "huge", "tiny", "old", "new", "wet", "vivid", "mild", "broken", "busy", "funny",
               "quiet", "loud", "bright", "empty", "fresh", "pink", "yellow", "cool", "odd")
_VERBS_PAST = ("bought", "moved", "found", "threw", "brought", "pushed", "washed", "painted",
               "opened", "moved", "visited", "fixed", "bumped", "pulled", "watched", "used",
               "fed", "played", "mopped", "wiped", "followed", "measured", "loved", "saved")
_VERBS = ("buy", "move", "find", "throw", "bring", "push", "wash", "paint", "open", "visit",
          "fix", "pull", "watch", "use", "feed", "play", "wipe", "follow", "measure", "keep",
          "see", "hear", "choose", "show", "teach", "pass", "mop", "weave", "soothe", "breathe")
_PLACES = ("in the park", "by the river", "at the beach", "over the bridge", "through the woods",
           "on the boat", "before the movie", "after breakfast", "under the table",
           "behind the museum", "with my brother", "for the baby", "in the morning",
           "near the pool", "beside the window", "at home", "across the valley")
_ADVERBS = ("very", "quite", "really", "too", "so", "pretty", "fairly", "awfully")
_NUMBERS = ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "twelve", "fifteen", "twenty", "thirty", "forty", "fifty", "ninety", "a hundred")
_INTERJECTIONS = ("Oh", "Wow", "Hmm", "Well", "Oops", "Yes", "No", "Hey", "Ah", "Boo", "Mm",
                  "Whoa", "Phew", "Ooh", "Umm")
_SHORT = ("Thank you.", "Maybe.", "Of course.", "Me too.", "Why not?", "Who knows?",
          "Be careful.", "Move over.", "Pass the pepper.", "Three, two, one.",
          "Yes, please.", "No way!", "Fair enough.", "Good morning.", "Very well.")


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _sentence(r: random.Random) -> str:
    n, n2 = r.choice(_NOUNS), r.choice(_NOUNS)
    adj, adj2 = r.choice(_ADJECTIVES), r.choice(_ADJECTIVES)
    name, name2 = r.choice(_NAMES), r.choice(_NAMES)
    kind = r.randrange(12)
    if kind == 0:
        return f"The {adj} {n} {r.choice(_VERBS_PAST)} the {n2} {r.choice(_PLACES)}."
    if kind == 1:
        return f"{name} {r.choice(_VERBS_PAST)} {_a(adj)} {n} for {name2}."
    if kind == 2:
        return f"Could you {r.choice(_VERBS)} the {n} {r.choice(_PLACES)}?"
    if kind == 3:
        return f"Please {r.choice(_VERBS)} {r.choice(_NUMBERS)} {n}s before {name} comes back."
    if kind == 4:
        return f"{r.choice(_INTERJECTIONS)}, the {n} is {r.choice(_ADVERBS)} {adj}!"
    if kind == 5:
        return (f"We need {r.choice(_NUMBERS)} {n}s, {r.choice(_NUMBERS)} {n2}s and "
                f"{_a(adj2)} {r.choice(_NOUNS)}.")
    if kind == 6:
        return f"Why did {name} {r.choice(_VERBS)} the {adj} {n}?"
    if kind == 7:
        return r.choice(_SHORT)
    if kind == 8:
        return (f"I think the {n} was {adj}, but {name} said it was "
                f"{r.choice(_ADVERBS)} {adj2}.")
    if kind == 9:
        return f"{name} and {name2} {r.choice(_VERBS_PAST)} the {n} {r.choice(_PLACES)}."
    if kind == 10:
        return f"{r.choice(_INTERJECTIONS)}... {r.choice(_SHORT)}"
    return (f"When the {n} is {adj}, {name} will {r.choice(_VERBS)} it and "
            f"{r.choice(_VERBS)} the {n2}.")


def sentences(count: int, *, seed: int = 0, exclude: set[str] | frozenset[str] = frozenset()
              ) -> list[str]:
    """``count`` distinct sentences, deterministic in ``seed``, none of them in ``exclude``.

    Raises:
        ValueError: ``count`` is negative, or the grammar ran out of new lines (it makes
            millions, so only a huge ``count`` or ``exclude`` gets here).
    """
    if count < 0:
        raise ValueError(f"count must not be negative, got {count}")
    r = random.Random(seed)
    out: list[str] = []
    seen = set(exclude)
    tries = 0
    while len(out) < count:
        tries += 1
        if tries > 50 * count + 1000:
            raise ValueError(f"the grammar made only {len(out)} new sentences of {count}")
        line = _sentence(r)
        if line in seen:
            continue
        seen.add(line)
        out.append(line)
    return out
