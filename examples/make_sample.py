"""Write the quickstart sample `examples/data/{train,dev,test}.txt` in the CLNER context format.

Social-media-like English sentences with the WNUT-17 entity types (person, location, group, creative-work,
corporation, product) in BIO tags; about 70% of the sentences carry 1-3 invented "search snippets" that
describe their entities (so the context tells the entity type). Every name and snippet is invented.
Deterministic: run `python examples/make_sample.py` to regenerate the same files.
"""

from __future__ import annotations

import argparse
import random
from pathlib import Path

SEED = 2021
N_TRAIN = 120
N_DEV = 40
N_TEST = 40
CONTEXT_RATE = 0.7

# Invented entities. The dev and test splits draw half of their entities from the `held_out` lists, so the model
# meets names it never saw in training and has to rely on the context. (test is drawn after train and dev from the
# same generator, so those two files are as they were before it existed.)
ENTITIES = {
    "person": {
        "train": [
            "Kaleo Brandt",
            "Mira Solenne",
            "Dax Okafor",
            "Tessa Vroom",
            "Jonah Pell",
            "Rue Castellan",
            "Ivo Marchetti",
            "Lena Quist",
            "Baz Whitmore",
            "Nadia Ferrow",
        ],
        "held_out": ["Oren Halvey", "Sunny Delacroix", "Petra Lindqvist", "Mako Tanner"],
    },
    "location": {
        "train": [
            "Port Haverly",
            "Glenmoor",
            "Lake Ostrava",
            "Brindle Bay",
            "San Aurelio",
            "Kestown",
            "Millbrook Park",
            "Vantaa Heights",
        ],
        "held_out": ["Corran Falls", "East Wyndham", "Isla Verana"],
    },
    "group": {
        "train": [
            "The Velvet Owls",
            "Harbor Kings",
            "Neon Orchard",
            "Glenmoor Rovers",
            "Static Lullaby",
            "Red Lantern Collective",
        ],
        "held_out": ["Paper Comets", "Kestown United", "The Hollow Pines"],
    },
    "creative-work": {
        "train": [
            "Midnight on Kessler Street",
            "Salt and Static",
            "The Glass Orchard",
            "Northbound",
            "Echoes of Tamsin",
            "Lanterns",
        ],
        "held_out": ["Quiet Harbor", "The Ninth Tide", "Sundial Blues"],
    },
    "corporation": {
        "train": ["Nimbrix", "Helloway", "Quantra", "Bluefin Telecom", "Orla Foods", "Vexa Air"],
        "held_out": ["Trellium", "Carrow Bank", "Zentro"],
    },
    "product": {
        "train": ["Zephyr X2", "Nimbrix Pad", "Lumo Buds", "Quantra One", "Pixelate 5", "Drift Watch"],
        "held_out": ["Helix Tab", "Aero Glide", "Komet S"],
    },
}

# Sentence templates: `{type}` slots become entities, other words are plain `O` tokens.
TEMPLATES = [
    "just saw {person} at {location} !! best night ever",
    "omg {person} is playing {location} tonight and i have no tickets",
    "can't stop listening to {creative-work} on repeat",
    "anyone else watching {creative-work} tonight ?",
    "my {product} died AGAIN ... thanks {corporation}",
    "{corporation} customer service put me on hold for 40 minutes smh",
    "{group} were insane last night , lost my voice",
    "who is going to the {group} show in {location} ?",
    "finally got the new {product} , the battery is unreal",
    "{person} just dropped a new single and it slaps",
    "traffic in {location} is a nightmare today #commute",
    "rt @radiobuzz : {group} announce tour with {person}",
    "{corporation} stock is up again after the {product} launch",
    "reading {creative-work} on the train , no spoilers pls",
    "@{handle} lol you sound like {person} in that clip",
    "moving to {location} next month , any tips ?",
    "so {corporation} bought {corporation} ? wild",
    "is the {product} worth it or should i wait",
    "{person} and {person} in the same room omg",
    "sunset over {location} right now 🌅",
    "huge win for {group} today , what a match",
    "can't believe {creative-work} got cancelled",
    "@{handle} did you see what {person} posted ? 😂",
    "{corporation} just sent me a refund , miracles happen",
]
NO_ENTITY = [
    "ugh mondays are the worst",
    "coffee first , then everything else",
    "@{handle} haha same , see you tomorrow",
    "it's raining again and i forgot my umbrella",
    "can't sleep , anyone up ?",
    "best pizza i've had in years no joke",
    "why is my phone always at 2 % when i need it",
    "lol this thread is gold",
]
HANDLES = ["jess_k", "mikeyd", "radiofan88", "tomwrites", "ana_b", "lilpixel", "dre_v"]

# Snippets that describe an entity and reveal its type.
SNIPPETS = {
    "person": [
        "{e} is a singer-songwriter from {loc} whose debut album {cw} topped the indie charts .",
        "{e} ( born 1994 ) is an actor and musician best known for the series {cw} .",
        "Official website of {e} , the comedian and podcast host . Tour dates and news .",
        "{e} - Wikipedia . {e} is a professional footballer who plays as a striker for {grp} .",
    ],
    "location": [
        "{e} is a coastal town in the north of the country with a population of about 40,000 .",
        "Things to do in {e} : beaches , the old harbour and the {e} city museum . Travel guide .",
        "{e} weather forecast : rain expected across the city and the surrounding region this week .",
        "{e} is a neighbourhood and district of the city , known for its parks and night markets .",
    ],
    "group": [
        "{e} are an indie rock band formed in {loc} in 2012 . Members : {per} ( vocals ) and three others .",
        "{e} announce a world tour . The band will play twenty cities starting in {loc} .",
        "{e} is a professional football club based in {loc} , playing in the national league .",
        "Official site of {e} , the electronic music collective . New album out now .",
    ],
    "creative-work": [
        "{e} is a 2019 drama film directed by {per} and set in {loc} .",
        "{e} is the second studio album by {grp} , released on vinyl and streaming services .",
        "{e} ( TV series ) - season 3 episode guide , cast and reviews . Starring {per} .",
        "{e} is a novel by {per} about a lighthouse keeper . Bestseller and book club pick .",
    ],
    "corporation": [
        "{e} Inc. is a technology company headquartered in {loc} that makes phones and tablets .",
        "{e} is a telecommunications company providing mobile and broadband services . Contact customer support .",
        "{e} shares rose 4 % after the company reported quarterly earnings . The firm employs 12,000 people .",
        "About {e} : the company was founded in 1998 and sells its products in forty countries .",
    ],
    "product": [
        "The {e} is a smartphone developed by {corp} , released in 2023 with a 6.1 inch display .",
        "{e} review : the wireless earbuds from {corp} offer great battery life for the price .",
        "Buy the {e} smartwatch - free shipping . Product specs , colours and accessories .",
        "{e} is a tablet computer made by {corp} . Compare models and prices .",
    ],
}
DISTRACTORS = [
    "Top 10 things trending today : weather , sports scores and celebrity news .",
    "Log in or sign up to see posts from friends and family .",
    "Photos and videos from last night , shared by fans on social media .",
]


def _pick(rng: random.Random, etype: str, split: str) -> str:
    pool = ENTITIES[etype]
    if split in ("dev", "test") and rng.random() < 0.5:
        return rng.choice(pool["held_out"])
    return rng.choice(pool["train"])


def _fill_snippet(rng: random.Random, etype: str, name: str, split: str) -> str:
    text = rng.choice(SNIPPETS[etype])
    return text.format(
        e=name,
        loc=_pick(rng, "location", split),
        per=_pick(rng, "person", split),
        grp=_pick(rng, "group", split),
        cw=_pick(rng, "creative-work", split),
        corp=_pick(rng, "corporation", split),
    )


def make_sentence(rng: random.Random, split: str) -> tuple[list[str], list[str], list[str]]:
    """One sentence: (tokens, BIO tags, context snippets)."""
    template = rng.choice(NO_ENTITY) if rng.random() < 0.15 else rng.choice(TEMPLATES)
    tokens: list[str] = []
    tags: list[str] = []
    entities: list[tuple[str, str]] = []
    for word in template.split():
        if word.startswith("{") and word.endswith("}") and word[1:-1] in ENTITIES:
            etype = word[1:-1]
            name = _pick(rng, etype, split)
            entities.append((etype, name))
            for k, part in enumerate(name.split()):
                tokens.append(part)
                tags.append(("B-" if k == 0 else "I-") + etype)
        else:
            tokens.append(word.replace("{handle}", rng.choice(HANDLES)))
            tags.append("O")
    context: list[str] = []
    if rng.random() < CONTEXT_RATE:
        unique = list(dict.fromkeys(entities))
        rng.shuffle(unique)
        for etype, name in unique[:3]:
            context.append(_fill_snippet(rng, etype, name, split))
        if not context or (len(context) < 3 and rng.random() < 0.3):
            context.append(rng.choice(DISTRACTORS))
    return tokens, tags, context


def to_clner(sentences: list[tuple[list[str], list[str], list[str]]]) -> str:
    lines: list[str] = []
    for tokens, tags, context in sentences:
        lines.extend(f"{tok}\t{tag}" for tok, tag in zip(tokens, tags))
        for snippet in context:
            lines.append("<EOS> B-X")
            lines.extend(f"{tok} B-X" for tok in snippet.split())
        lines.append("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out_dir", default=str(Path(__file__).resolve().parent / "data"))
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", N_TRAIN), ("dev", N_DEV), ("test", N_TEST)):
        sentences = [make_sentence(rng, split) for _ in range(n)]
        (out / f"{split}.txt").write_text(to_clner(sentences), encoding="utf-8")
        n_ctx = sum(1 for s in sentences if s[2])
        print(f"{out / f'{split}.txt'}: {n} sentences, {n_ctx} with context")


if __name__ == "__main__":
    main()
