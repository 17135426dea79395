"""A long, deterministic document with one checkable fact planted in each section.

The summarization benchmark needs a text far longer than a small model's
context whose content can be checked afterwards. This module writes an
almanac of an imaginary river valley: 40 sections (one topic each, a
Markdown heading each), about 25,000 words of filler prose built from
templates and word lists, and in every section exactly one *distinctive
fact*: an invented place, an invented person's surname, or a year. The fact
tokens appear nowhere else in the document (no other proper names, no other
numbers), so a summary that contains one kept it. Sentences are never
repeated: a sentence that was already used is drawn again.

    python benchmarks/make_document.py --out doc.md --facts facts.json   # seed 8
    python benchmarks/make_document.py --seed 3 --words 12000 --sections 20

Everything follows from the seed (``random.Random(seed)``), so two runs with
the same arguments write the same bytes.
"""

from __future__ import annotations

import argparse
import json
import random
import re
from dataclasses import asdict, dataclass
from pathlib import Path

# Each topic, one a line: heading | the thing its fact is about | nouns for the filler | who works there.
_TOPIC_LINES = """
The river and its floods | flood wall | embankment, sluice, water meadow, ford, weir | boatmen, dyke wardens
The salt marshes | salt works | brine pan, tidal creek, reed bed, sea wall, drying shed | salters, marsh shepherds
Weaving and the cloth trade | weaving hall | loom, spindle, dye vat, bolt of linen, shuttle | weavers, cloth merchants
The northern road | toll house | milestone, coaching inn, turnpike, cart track, causeway | carters, innkeepers
Beekeeping | apiary | hive, honeycomb, swarm, wax press, clover field | beekeepers, chandlers
The lighthouse | lighthouse | lantern room, fog bell, reflector, oil store, headland | keepers, pilots
Orchards | cider press | apple tree, pear graft, orchard wall, fruit loft, pruning hook | orchardists, pickers
The mill | water mill | millstone, mill race, grain hopper, water wheel, flour sack | millers, farmers
Schools | grammar school | schoolroom, slate, primer, school bell, writing desk | teachers, pupils
The harbour | harbour | quay, breakwater, mooring post, customs shed, slipway | dockers, harbour masters
Stone quarries | quarry | quarry face, block of granite, crane, chisel, spoil heap | quarrymen, masons
Glassmaking | glass furnace | crucible, blowpipe, annealing oven, window pane, bottle | glassblowers, glaziers
Music and the choirs | choir school | organ, hymn book, fiddle, choir loft, tuning fork | singers, organists
The forest | forest lodge | oak, charcoal clamp, woodland ride, saw pit, beech hanger | foresters, charcoal burners
Bridges | stone bridge | arch, pier, parapet, toll gate, timber centring | bridge builders, surveyors
Markets and fairs | market hall | stall, weighing beam, cattle pen, market cross, awning | traders, drovers
The observatory | observatory | telescope, star chart, transit clock, dome, lens | astronomers, instrument makers
Cheese making | dairy | cheese press, curd tub, ripening cellar, churn, milking stool | dairymaids, cheesemongers
The printing press | print shop | press, type case, broadsheet, ink ball, composing stick | printers, booksellers
Shipbuilding | shipyard | keel, hull, rope walk, mast, dry dock | shipwrights, riggers
Vineyards | wine cellar | vine, terrace, grape press, barrel, trellis | vintners, coopers
The canal | canal | lock, towpath, narrowboat, aqueduct, wharf | bargemen, lock keepers
The hospital | infirmary | ward, dispensary, herb garden, sick bed, operating table | physicians, nurses
Pottery | pottery | kiln, potter's wheel, glaze tub, clay pit, drying rack | potters, kiln firemen
Sheep and wool | wool exchange | fleece, shearing shed, sheepfold, carding comb, dip | shepherds, wool staplers
The library | library | reading room, catalogue, manuscript, bookcase, lectern | librarians, readers
Clockmaking | clock workshop | escapement, pendulum, clock face, gear train, spring | clockmakers, apprentices
Fishing fleets | fish market | trawler, herring net, smokehouse, lobster pot, net loft | fishermen, net menders
The railway | railway station | locomotive, signal box, cutting, viaduct, goods yard | engine drivers, porters
Festivals | harvest festival | bonfire, procession, maypole, lantern, banner | dancers, musicians
Mining | lead mine | shaft, adit, ore wagon, pumping engine, winding gear | miners, smelters
Bellfounding | bell foundry | bell mould, casting pit, clapper, bell frame, tuning lathe | founders, bell ringers
Paper | paper mill | rag vat, paper mould, drying loft, watermark, ream | papermakers, stationers
Gardens | physic garden | glasshouse, parterre, kitchen garden, yew hedge, seed bed | gardeners, botanists
Weather records | weather station | rain gauge, barometer, wind vane, thermometer, logbook | observers, almanac writers
The post | post office | mail coach, letter bag, sorting table, post horn, franking stamp | postmasters, letter carriers
Leather tanning | tannery | tan pit, hide, bark mill, currying bench, saddle | tanners, saddlers
Theatre | playhouse | stage, curtain, footlight, dressing room, playbill | actors, stagehands
Maps and surveying | survey office | theodolite, chain, boundary stone, map sheet, baseline | surveyors, draughtsmen
The museum | museum | display case, fossil, coin cabinet, gallery, specimen drawer | curators, visitors
"""  # noqa: E501
Topic = tuple[str, str, tuple[str, ...], tuple[str, ...]]


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


def _topic(line: str) -> Topic:
    title, thing, nouns, workers = (part.strip() for part in line.split("|"))
    return title, thing, tuple(nouns.split(", ")), tuple(workers.split(", "))


TOPICS: list[Topic] = [_topic(line) for line in _TOPIC_LINES.strip().splitlines()]
ADJECTIVES = _words(
    """
    old narrow heavy quiet damp sturdy crooked bright patient careful broad humble costly fragile
    weathered simple ornate modest busy steep shallow sheltered exposed neglected polished rough
    tidy cramped generous stubborn cold warm grey dusty noisy silent familiar strange lasting
    temporary elegant plain worn fresh clumsy reliable uneven gentle sober lively distant common
    rare solid hollow shaded sunny muddy orderly
    """
)
ADVERBS = _words(
    """
    slowly carefully often rarely patiently quietly eagerly reluctantly steadily gradually
    cheerfully grudgingly faithfully briskly cautiously openly usually seldom proudly wisely hastily
    thoroughly loosely firmly
    """
)
# (past tense, base form) pairs.
_VERB_WORDS = _words(
    """
    repaired repair measured measure painted paint cleaned clean rebuilt rebuild inspected inspect
    guarded guard extended extend moved move shared share improved improve defended defend described
    describe praised praise ignored ignore tested test widened widen sold sell bought buy borrowed
    borrow mended mend rented rent visited visit studied study drew draw counted count weighed weigh
    carried carry replaced replace kept keep opened open closed close decorated decorate covered
    cover watched watch restored restore
    """
)
VERBS = tuple(zip(_VERB_WORDS[::2], _VERB_WORDS[1::2], strict=True))
TIMES = tuple(
    line.strip()
    for line in """
    in the dry months
    after the long winters
    during the harvest
    before the spring tides
    on market days
    at the turn of each season
    in the evenings
    at first light
    when the roads were passable
    in years of plenty
    in lean years
    after the great storm
    during the wet autumns
    whenever money allowed
    every few summers
    on feast days
    before the frosts
    while the river ran low
    in the quiet weeks after sowing
    once the accounts were settled
    late in the year
    early in the morning
""".strip().splitlines()
)
REASONS = tuple(
    line.strip()
    for line in """
    because the prices had fallen
    since nobody else would do it
    to please the council
    because the weather had turned
    for the sake of the children
    as the old custom required
    because a quarrel had broken out
    to save a little money
    as the parish had asked
    because the work was honest
    to keep the peace
    because the last attempt had failed
    for fear of fire
    to attract new trade
    because travellers complained
    out of habit
    because the neighbours insisted
    to satisfy the inspectors
    because the timber was cheap
""".strip().splitlines()
)
OPINIONS = tuple(
    line.strip()
    for line in """
    the neighbours thought it wasteful
    the elders approved of it
    the visitors found it charming
    the accounts show it paid for itself
    the council argued about it for weeks
    the younger workers disliked it
    the tradition survives in a softer form
    the letters of the time mention it with pride
    the chroniclers passed over it in silence
    the arrangement lasted longer than anyone expected
    the change was hardly noticed
""".strip().splitlines()
)
GENERIC = _words(
    """
    ledger workshop storehouse lane courtyard cart ladder lamp fence doorway cellar roof chimney
    well gate bench barn yard hedge path
    """
)
TEMPLATES = tuple(
    line.strip()
    for line in """
    {Time}, the {w} {adv} {v} the {a} {n}.
    The {w} {v} the {n} {time} {reason}.
    Although the {n} was {a}, the {w} {v} it {time}.
    Many {w} believed that the {n} should {vb} the {g} {reason}.
    The {a} {n} stood beside a {a2} {g}, and {opinion}.
    When the {w} {v} the {n}, {opinion}.
    {Adv}, the {w} {v} the {a} {g} near the {n}.
    Nobody remembers who first {v} the {n}, but {opinion}.
    The {w} kept a {a} {g} for the {n} and {v} it {time}.
    It was said that the {n} was {a} and the {n2} {a2}.
    Visitors {adv} {v} the {n}, {reason}.
    The {w} {adv} {v} the {n2} while the {n} was {a}.
    A {a} {g} led from the {n} to the {n2}, and the {w} {v} it {time}.
    The {n} was {a} {time}, so the {w} {v} the {g} {reason}.
    Some {w} {v} the {n} and others {v2} the {n2}.
    The {w} disagreed about the {n}: some wanted to {vb} it, others to {vb2} it.
    {Time}, the {a} {n} needed the {w} to {vb} the {g}.
    Even the {a} {w} {v} the {n} {reason}.
    The {n2} was {a} and {a2}, and the {w} {adv} {v} it.
    Records say the {w} {v} the {g} {time}, and {opinion}.
    Because the {n} was {a}, the {w} {v} the {n2} {time}.
    The {w} used the {a} {g} to {vb} the {n}.
    Few {w} could {vb} the {n} without help, {reason}.
    The {n} and the {n2} were {a}, and {opinion}.
    Each family {v} a {a} {g} near the {n} {time}.
""".strip().splitlines()
)
# Fact sentences: the {x} slot is the distinctive token (a place, a surname or a year).
FACT_TEMPLATES = {
    "place": (
        "The first {t} of the valley was built at {x}, a small village on the eastern bank.",
        "The finest {t} of the region stood in the hamlet of {x}.",
    ),
    "person": (
        "The {t} owed its reputation to a woman named Ada {x}, who ran it for thirty years.",
        "The {t} was founded by a carpenter called Tomas {x}.",
    ),
    "year": (
        "The {t} was first recorded in the parish books in {x}.",
        "The {t} opened in {x} and has never closed since.",
    ),
}
SYLLABLES = _words(
    """
    bar vel tor mun dris kal quen sor lind mar pell rost hav gur zen wick brom tal nes frey olm cair
    dun vash tre lox
    """
)
ENDINGS_PLACE = _words(
    """
    holm stead mere thorpe wick by ford
    """
)
ENDINGS_PERSON = _words(
    """
    ridge well monde ard ington ley stone
    """
)


@dataclass(frozen=True)
class Fact:
    """One planted fact: section number (1-based), kind, the token to look for, its sentence."""

    section: int
    kind: str
    token: str
    sentence: str


@dataclass(frozen=True)
class Document:
    text: str
    facts: list[Fact]

    @property
    def words(self) -> int:
        return len(self.text.split())


def _invent(rng: random.Random, endings: tuple[str, ...], used: set[str]) -> str:
    while True:
        word = "".join(rng.choice(SYLLABLES) for _ in range(rng.choice((1, 2)))) + rng.choice(endings)
        word = word.capitalize()
        if word.lower() not in used and len(word) >= 6:
            used.add(word.lower())
            return word


def _facts(rng: random.Random, sections: int) -> list[tuple[str, str]]:
    kinds = ("place", "person", "year")
    used: set[str] = set()
    years = rng.sample(range(1520, 1900), sections)
    out = []
    for i in range(sections):
        kind = kinds[i % 3]
        if kind == "place":
            token = _invent(rng, ENDINGS_PLACE, used)
        elif kind == "person":
            token = _invent(rng, ENDINGS_PERSON, used)
        else:
            token = str(years[i])
        out.append((kind, token))
    return out


def _sentence(rng: random.Random, topic: tuple[str, str, tuple[str, ...], tuple[str, ...]]) -> str:
    _, _, nouns, workers = topic
    n, n2 = rng.sample(nouns, 2)
    a, a2 = rng.sample(ADJECTIVES, 2)
    (v, vb), (v2, vb2) = rng.sample(VERBS, 2)
    time_, adv = rng.choice(TIMES), rng.choice(ADVERBS)
    text = rng.choice(TEMPLATES).format(
        w=rng.choice(workers),
        n=n,
        n2=n2,
        a=a,
        a2=a2,
        v=v,
        vb=vb,
        v2=v2,
        vb2=vb2,
        g=rng.choice(GENERIC),
        time=time_,
        Time=time_.capitalize(),
        adv=adv,
        Adv=adv.capitalize(),
        reason=rng.choice(REASONS),
        opinion=rng.choice(OPINIONS),
    )
    text = re.sub(r"\b([Aa]) (?=[aeiou])", r"\1n ", text)
    return text[0].upper() + text[1:]


def make_document(seed: int = 8, words: int = 25_000, sections: int = 40) -> Document:
    """Build the document; ``words`` is approximate (within a sentence per section)."""
    if sections > len(TOPICS):
        raise ValueError(f"at most {len(TOPICS)} sections")
    rng = random.Random(seed)
    topics = rng.sample(TOPICS, sections)
    per_section = words // sections
    seen: set[str] = set()
    parts = ["# An almanac of the valley", ""]
    facts: list[Fact] = []
    for number, (topic, (kind, token)) in enumerate(zip(topics, _facts(rng, sections), strict=True), start=1):
        title, thing = topic[0], topic[1]
        fact = rng.choice(FACT_TEMPLATES[kind]).format(t=thing, x=token)
        body = [fact]
        count = len(fact.split()) + len(title.split()) + 2
        while count < per_section:
            sentence = _sentence(rng, topic)
            if sentence in seen:
                continue
            seen.add(sentence)
            body.append(sentence)
            count += len(sentence.split())
        # The fact goes anywhere in the section but the very first or last sentence.
        fact_line = body.pop(0)
        body.insert(rng.randrange(1, len(body)), fact_line)
        paragraphs, i = [], 0
        while i < len(body):
            size = rng.randint(4, 8)
            paragraphs.append(" ".join(body[i : i + size]))
            i += size
        parts += [f"## {number}. {title}", "", *(p + "\n" for p in paragraphs)]
        facts.append(Fact(number, kind, token, fact_line))
    text = "\n".join(parts).rstrip() + "\n"
    _check(text, facts)
    return Document(text, facts)


def _check(text: str, facts: list[Fact]) -> None:
    """Each fact token occurs exactly once, and no other number is in the text."""
    for fact in facts:
        hits = len(re.findall(rf"\b{re.escape(fact.token)}\b", text, flags=re.IGNORECASE))
        if hits != 1:
            raise AssertionError(f"fact {fact.token!r} occurs {hits} times")
    years = {f.token for f in facts if f.kind == "year"}
    numbers = set(re.findall(r"\b\d{3,}\b", text))
    if numbers != years:
        raise AssertionError(f"unplanned numbers: {sorted(numbers - years)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--words", type=int, default=25_000)
    parser.add_argument("--sections", type=int, default=40)
    parser.add_argument("--out", type=Path, help="write the document here (else print it)")
    parser.add_argument("--facts", type=Path, help="write the planted facts here as JSON")
    args = parser.parse_args()
    doc = make_document(args.seed, args.words, args.sections)
    if args.out:
        args.out.write_text(doc.text, encoding="utf-8")
        print(f"{args.out}: {doc.words} words, {len(doc.facts)} sections")
    else:
        print(doc.text, end="")
    if args.facts:
        args.facts.write_text(json.dumps([asdict(f) for f in doc.facts], indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
