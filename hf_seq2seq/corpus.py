"""The built-in English→French demonstration corpus, generated deterministically from a small grammar.

It exists so that `python train.py` works on a fresh machine with no network. It is a demonstration of what the
model learns, not a general translator: about 60 nouns, 20 adjectives and 10 verbs, in sentences such as

    On Friday, June 12, my sister did not see the three white cars.
    Le vendredi 12 juin, ma sœur n'a pas vu les trois voitures blanches.

The translation needs what real translation needs: word order changes (French adjectives follow the noun),
gender and number agreement (article, adjective, past participle), verb conjugation in three tenses with
negation, elision (j'ai, l'arbre, n'aime), numbers written as words or digits, and dates.

Generalisation, not memory: a fixed fifth of all (noun, adjective) pairs never occurs in the training split, and
every test sentence contains at least one of them (so its French agreement must be composed, e.g. "voitures
blanches" from "voitures" and "blanches" seen elsewhere). No test sentence occurs in training.
"""

import random
from dataclasses import dataclass

# English singular, English plural, French singular, French plural, gender.
NOUNS = [
    ("cat", "cats", "chat", "chats", "m"), ("dog", "dogs", "chien", "chiens", "m"),
    ("house", "houses", "maison", "maisons", "f"), ("car", "cars", "voiture", "voitures", "f"),
    ("book", "books", "livre", "livres", "m"), ("table", "tables", "table", "tables", "f"),
    ("apple", "apples", "pomme", "pommes", "f"), ("bird", "birds", "oiseau", "oiseaux", "m"),
    ("tree", "trees", "arbre", "arbres", "m"), ("flower", "flowers", "fleur", "fleurs", "f"),
    ("chair", "chairs", "chaise", "chaises", "f"), ("door", "doors", "porte", "portes", "f"),
    ("window", "windows", "fenêtre", "fenêtres", "f"), ("horse", "horses", "cheval", "chevaux", "m"),
    ("shirt", "shirts", "chemise", "chemises", "f"), ("hat", "hats", "chapeau", "chapeaux", "m"),
    ("bicycle", "bicycles", "vélo", "vélos", "m"), ("boat", "boats", "bateau", "bateaux", "m"),
    ("cup", "cups", "tasse", "tasses", "f"), ("glass", "glasses", "verre", "verres", "m"),
    ("letter", "letters", "lettre", "lettres", "f"), ("key", "keys", "clé", "clés", "f"),
    ("bag", "bags", "sac", "sacs", "m"), ("box", "boxes", "boîte", "boîtes", "f"),
    ("dress", "dresses", "robe", "robes", "f"), ("shoe", "shoes", "chaussure", "chaussures", "f"),
    ("coat", "coats", "manteau", "manteaux", "m"), ("bed", "beds", "lit", "lits", "m"),
    ("lamp", "lamps", "lampe", "lampes", "f"), ("pen", "pens", "stylo", "stylos", "m"),
    ("picture", "pictures", "image", "images", "f"), ("cake", "cakes", "gâteau", "gâteaux", "m"),
    ("egg", "eggs", "œuf", "œufs", "m"), ("orange", "oranges", "orange", "oranges", "f"),
    ("plate", "plates", "assiette", "assiettes", "f"), ("ball", "balls", "balle", "balles", "f"),
    ("train", "trains", "train", "trains", "m"), ("truck", "trucks", "camion", "camions", "m"),
    ("computer", "computers", "ordinateur", "ordinateurs", "m"), ("phone", "phones", "téléphone", "téléphones", "m"),
    ("garden", "gardens", "jardin", "jardins", "m"), ("street", "streets", "rue", "rues", "f"),
    ("bottle", "bottles", "bouteille", "bouteilles", "f"), ("fish", "fish", "poisson", "poissons", "m"),
    ("mouse", "mice", "souris", "souris", "f"), ("cow", "cows", "vache", "vaches", "f"),
    ("sheep", "sheep", "mouton", "moutons", "m"), ("wall", "walls", "mur", "murs", "m"),
    ("towel", "towels", "serviette", "serviettes", "f"), ("spoon", "spoons", "cuillère", "cuillères", "f"),
    ("knife", "knives", "couteau", "couteaux", "m"), ("umbrella", "umbrellas", "parapluie", "parapluies", "m"),
    ("jacket", "jackets", "veste", "vestes", "f"), ("toy", "toys", "jouet", "jouets", "m"),
    ("stone", "stones", "pierre", "pierres", "f"), ("island", "islands", "île", "îles", "f"),
    ("airplane", "airplanes", "avion", "avions", "m"), ("school", "schools", "école", "écoles", "f"),
    ("hotel", "hotels", "hôtel", "hôtels", "m"), ("church", "churches", "église", "églises", "f"),
]

# English, then French masculine singular, feminine singular, masculine plural, feminine plural.
ADJECTIVES = [
    ("red", "rouge", "rouge", "rouges", "rouges"), ("black", "noir", "noire", "noirs", "noires"),
    ("green", "vert", "verte", "verts", "vertes"), ("blue", "bleu", "bleue", "bleus", "bleues"),
    ("white", "blanc", "blanche", "blancs", "blanches"), ("heavy", "lourd", "lourde", "lourds", "lourdes"),
    ("fast", "rapide", "rapide", "rapides", "rapides"), ("round", "rond", "ronde", "ronds", "rondes"),
    ("expensive", "cher", "chère", "chers", "chères"), ("broken", "cassé", "cassée", "cassés", "cassées"),
    ("new", "neuf", "neuve", "neufs", "neuves"), ("square", "carré", "carrée", "carrés", "carrées"),
    ("wet", "mouillé", "mouillée", "mouillés", "mouillées"), ("empty", "vide", "vide", "vides", "vides"),
    ("strange", "étrange", "étrange", "étranges", "étranges"), ("yellow", "jaune", "jaune", "jaunes", "jaunes"),
    ("grey", "gris", "grise", "gris", "grises"), ("clean", "propre", "propre", "propres", "propres"),
    ("sweet", "doux", "douce", "doux", "douces"), ("Italian", "italien", "italienne", "italiens", "italiennes"),
]

# English subject, its verb person (0-5: I, you, he/she/it, we, you (plural), they), French subject.
PRONOUNS = [
    ("I", 0, "je"), ("you", 1, "tu"), ("he", 2, "il"), ("she", 2, "elle"), ("we", 3, "nous"),
    ("you all", 4, "vous"), ("they", 5, "ils"),
]
# People as subjects: English, French with its possessive already agreed, gender.
PEOPLE = [
    ("my brother", "mon frère"), ("my sister", "ma sœur"), ("our teacher", "notre professeur"),
    ("the doctor", "le médecin"), ("your mother", "ta mère"), ("his father", "son père"),
    ("the baker", "le boulanger"), ("my neighbour", "ma voisine"), ("the children", "les enfants"),
    ("my friends", "mes amis"),
]

# Verb: English base, 3rd singular, past, participle; French present (6 persons), future stem, participle.
# The participle of a French verb with "avoir" does not agree with a following object: no agreement needed there.
VERBS = [
    ("see", "sees", "saw", ["vois", "vois", "voit", "voyons", "voyez", "voient"], "verr", "vu"),
    ("like", "likes", "liked", ["aime", "aimes", "aime", "aimons", "aimez", "aiment"], "aimer", "aimé"),
    ("buy", "buys", "bought", ["achète", "achètes", "achète", "achetons", "achetez", "achètent"], "achèter", "acheté"),
    ("find", "finds", "found", ["trouve", "trouves", "trouve", "trouvons", "trouvez", "trouvent"], "trouver", "trouvé"),
    ("want", "wants", "wanted", ["veux", "veux", "veut", "voulons", "voulez", "veulent"], "voudr", "voulu"),
    ("sell", "sells", "sold", ["vends", "vends", "vend", "vendons", "vendez", "vendent"], "vendr", "vendu"),
    ("take", "takes", "took", ["prends", "prends", "prend", "prenons", "prenez", "prennent"], "prendr", "pris"),
    ("paint", "paints", "painted", ["peins", "peins", "peint", "peignons", "peignez", "peignent"], "peindr", "peint"),
    ("wash", "washes", "washed", ["lave", "laves", "lave", "lavons", "lavez", "lavent"], "laver", "lavé"),
    ("carry", "carries", "carried", ["porte", "portes", "porte", "portons", "portez", "portent"], "porter", "porté"),
]
AVOIR = ["ai", "as", "a", "avons", "avez", "ont"]
FUTURE_ENDINGS = ["ai", "as", "a", "ons", "ez", "ont"]

NUMBERS = [("two", "deux", 2), ("three", "trois", 3), ("four", "quatre", 4), ("five", "cinq", 5), ("six", "six", 6),
           ("seven", "sept", 7), ("eight", "huit", 8), ("nine", "neuf", 9), ("ten", "dix", 10),
           ("eleven", "onze", 11), ("twelve", "douze", 12), ("twenty", "vingt", 20)]
DAYS = [("Monday", "lundi"), ("Tuesday", "mardi"), ("Wednesday", "mercredi"), ("Thursday", "jeudi"),
        ("Friday", "vendredi"), ("Saturday", "samedi"), ("Sunday", "dimanche")]
MONTHS = [("January", "janvier"), ("February", "février"), ("March", "mars"), ("April", "avril"), ("May", "mai"),
          ("June", "juin"), ("July", "juillet"), ("August", "août"), ("September", "septembre"),
          ("October", "octobre"), ("November", "novembre"), ("December", "décembre")]

VOWELS = tuple("aeiouhéèêâîôœAEIOUHÉ")


def elide(word: str, following: str) -> str:
    """je + ai -> j'ai, le + arbre -> l'arbre, ne + aime -> n'aime: join with an apostrophe before a vowel."""
    if word in ("je", "le", "la", "ne", "de") and following.startswith(VOWELS):
        return word[0] + "'" + following
    return word + " " + following


def capitalize(text: str) -> str:
    return text[0].upper() + text[1:]


@dataclass
class NounPhrase:
    english: str
    french: str
    plural: bool


def noun_phrase(rng: random.Random, pair: tuple[int, int | None]) -> NounPhrase:
    """Determiner (+ number) + noun (+ adjective): "the three white cars" -> "les trois voitures blanches"."""
    noun, adjective = pair
    en_sg, en_pl, fr_sg, fr_pl, gender = NOUNS[noun]
    kind = rng.choice(["the", "a", "my", "this", "number", "the_number", "digits"])
    plural = kind in ("number", "the_number", "digits") or (kind in ("the", "my", "this") and rng.random() < 0.4)
    en_noun, fr_noun = (en_pl, fr_pl) if plural else (en_sg, fr_sg)
    fr_adjective = ""
    if adjective is not None:
        forms = ADJECTIVES[adjective]
        en_noun = forms[0] + " " + en_noun
        fr_adjective = " " + forms[1 + (gender == "f") + 2 * plural]
    fem = gender == "f"
    if kind == "the":
        en, fr = "the " + en_noun, ("les " + fr_noun if plural else elide("la" if fem else "le", fr_noun))
    elif kind == "a":
        en = ("an " if en_noun.startswith(tuple("aeiou")) else "a ") + en_noun
        fr = ("une " if fem else "un ") + fr_noun
    elif kind == "my":
        en = "my " + en_noun
        fr = ("mes " if plural else "ma " if fem and not fr_noun.startswith(VOWELS) else "mon ") + fr_noun
    elif kind == "this":
        en = ("these " if plural else "this ") + en_noun
        fr = ("ces " if plural else "cette " if fem else "cet " if fr_noun.startswith(VOWELS) else "ce ") + fr_noun
    elif kind == "digits":
        n = rng.randint(21, 9999)
        en, fr = f"{n} {en_noun}", f"{n} {fr_noun}"
    else:
        en_number, fr_number, _ = rng.choice(NUMBERS)
        en, fr = f"{en_number} {en_noun}", f"{fr_number} {fr_noun}"
        if kind == "the_number":
            en, fr = "the " + en, "les " + fr
    return NounPhrase(en, fr + fr_adjective, plural)


def verb_phrase(rng: random.Random, person: int) -> tuple[str, str]:
    """English and French verb groups for a subject of the given person (0-5)."""
    base, third, past, present, future_stem, participle = rng.choice(VERBS)
    tense = rng.choice(["present", "past", "future"])
    negative = rng.random() < 0.3
    third_person = person == 2
    if tense == "present":
        en = (("does not " if third_person else "do not ") + base) if negative else (third if third_person else base)
        fr = present[person]
    elif tense == "past":
        en = "did not " + base if negative else past
        fr = AVOIR[person]
    else:
        en = ("will not " if negative else "will ") + base
        fr = future_stem + FUTURE_ENDINGS[person]
    if negative:
        fr = elide("ne", fr) + " pas"
    if tense == "past":
        fr += " " + participle
    return en, fr


def date_phrase(rng: random.Random) -> tuple[str, str]:
    day_en, day_fr = rng.choice(DAYS)
    month_en, month_fr = rng.choice(MONTHS)
    day = rng.randint(1, 28)
    fr_day = "1er" if day == 1 else str(day)
    if rng.random() < 0.5:
        return f"On {day_en}, {month_en} {day},", f"Le {day_fr} {fr_day} {month_fr},"
    return f"On {month_en} {day},", f"Le {fr_day} {month_fr},"


def sentence(rng: random.Random, object_pair: tuple[int, int | None], subject_pair: tuple[int, int | None]) -> tuple[str, str]:
    kind = rng.random()
    if kind < 0.5:
        subject_en, person, subject_fr = rng.choice(PRONOUNS)
    elif kind < 0.8:
        subject_en, subject_fr = rng.choice(PEOPLE)
        person = 5 if subject_fr.startswith(("les ", "mes ")) else 2
    else:
        phrase = noun_phrase(rng, subject_pair)
        subject_en, subject_fr, person = phrase.english, phrase.french, 5 if phrase.plural else 2
    verb_en, verb_fr = verb_phrase(rng, person)
    obj = noun_phrase(rng, object_pair)
    en = f"{subject_en} {verb_en} {obj.english}"
    fr = f"{elide(subject_fr, verb_fr)} {obj.french}"
    if rng.random() < 0.3:
        date_en, date_fr = date_phrase(rng)
        en, fr = f"{date_en} {en}", f"{date_fr} {fr}"
    return capitalize(en) + ".", capitalize(fr) + "."


def held_out_pairs(seed: int = 0) -> set[tuple[int, int]]:
    """A fixed fifth of all (noun, adjective) pairs, never used in training."""
    pairs = [(n, a) for n in range(len(NOUNS)) for a in range(len(ADJECTIVES))]
    random.Random(seed).shuffle(pairs)
    return set(pairs[: len(pairs) // 5])


def generate_corpus(train_size: int = 40000, test_size: int = 1000, seed: int = 0) -> dict[str, list[dict]]:
    """{"train", "validation", "test"} lists of {"translation": {"en": ..., "fr": ...}}.

    validation is drawn like train (and also disjoint from it); test sentences each contain a held-out
    (noun, adjective) pair. Deterministic for a given seed.
    """
    rng = random.Random(seed)
    held_out = held_out_pairs(seed)
    seen_pairs = [(n, a) for n in range(len(NOUNS)) for a in range(len(ADJECTIVES)) if (n, a) not in held_out]

    def training_pair() -> tuple[int, int | None]:
        return rng.choice(seen_pairs) if rng.random() < 0.7 else (rng.randrange(len(NOUNS)), None)

    train, seen = [], set()
    while len(train) < train_size:
        en, fr = sentence(rng, training_pair(), training_pair())
        if en not in seen:
            seen.add(en)
            train.append({"translation": {"en": en, "fr": fr}})

    def fresh(pick_object) -> dict:
        while True:
            en, fr = sentence(rng, pick_object(), training_pair())
            if en not in seen:
                seen.add(en)
                return {"translation": {"en": en, "fr": fr}}

    held = sorted(held_out)
    validation = [fresh(training_pair) for _ in range(test_size)]
    test = [fresh(lambda: rng.choice(held)) for _ in range(test_size)]
    return {"train": train, "validation": validation, "test": test}
