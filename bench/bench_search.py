"""Benchmark of paper search and autocomplete (what ``/paper`` members wait for) on N synthetic
papers, on SQLite (FTS5) or PostgreSQL (tsvector + GIN).

Run by hand::

    python bench/bench_search.py [--backend sqlite|postgresql] [--papers 1000000]
    python bench/bench_search.py --backend postgresql            # HOTPAPERS_TEST_POSTGRES_URL
    python bench/bench_search.py --url postgresql+asyncpg://…/db  # an explicit database

The corpus is built once and reused: a SQLite file under ``--cache-dir`` (default
``$TMPDIR/hotpapers-bench``), or a PostgreSQL database named after the corpus
(``hp_bench_search_c<version>_n<papers>_s<seed>``) on the server of
``HOTPAPERS_TEST_POSTGRES_URL``; both are keyed by the number of papers, the seed and
``CORPUS_VERSION`` (bumped whenever the generator changes), and built under a temporary name
then renamed, so an interrupted build is never reused. A cached corpus is brought to the
code's head revision when opened (the figures then include what new migrations built);
``--rebuild`` starts again. ``--url`` names a database to build in (when empty) or to reuse
(when it holds this corpus, or with ``--reuse`` whatever it holds).

The corpus: titles and abstracts with Zipf-Mandelbrot word frequencies over a technical
vocabulary (common words are as common as on arXiv: "model" in ~8% of titles and ~30% of
abstracts) and a long tail of made-up words, function words included as people type them;
authors from a Zipf list of surnames (a few very common, most rare); one to three categories.
Rows go in by bulk insert through the real schema (FTS5 triggers; COPY on PostgreSQL, with the
papers' non-unique indexes dropped first and built again afterwards, as they were).

Queries are drawn from stored papers (so that most have matches) by kind: two words (common +
common, common + rare, rare + rare, and rare pairs that match nothing), one word, a pasted
title fragment, an author, quoted words, id lookups; autocomplete of 1-4 letters, of a partial
word after whole ones, of a partial surname, and of an arXiv id. Every call is made once to
warm the caches, then measured (``--repeat`` passes) through PaperRepository: the full async
stack (SQLAlchemy + aiosqlite or asyncpg), not the raw driver. Reported: p50/p95/p99/max per
kind, the machine's core count and load. Targets (p99, warm): two-word searches at most 5 ms on
SQLite and 10 ms on PostgreSQL; autocomplete at most 5 ms on both. Exit status 1 on a miss.

Cost at the default 1,000,000 papers, once: SQLite 3.2 GB and about 10 minutes to build;
PostgreSQL 5.3 GB and about 20 minutes (on 2 busy cores). ``--papers 20000`` checks the output
in seconds. Phrases are not a feature of the search: the quoted kind measures quotes typed
anyway (they separate words like any punctuation).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import json
import os
import random
import re
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.engine import URL, make_url

from bot.storage.engine import Database
from bot.storage.engine import open as open_database
from bot.storage.papers import PaperRepository
from bot.storage.tables import papers
from bot.storage.types import utc_text

CORPUS_VERSION = 2  # bump when the generator changes: cached corpora are keyed by it
POSTGRES_URL_VARIABLE = "HOTPAPERS_TEST_POSTGRES_URL"
TWO_WORD_TARGET_MS = {"sqlite": 5.0, "postgresql": 10.0}
AUTOCOMPLETE_TARGET_MS = 5.0


def _words(text: str) -> list[str]:
    return text.split()


# Ordered roughly from most to least frequent in arXiv titles/abstracts (cs, stat, physics).
TERMS = _words("""
model learning data method network results neural approach performance problem training
language deep based models paper methods framework time analysis system task large propose
show using image information quantum tasks graph new algorithm function prediction
representation efficient reinforcement optimization generation robust theory state inference
text networks linear distribution attention transformer features multi dataset evaluation
classification detection segmentation semantic knowledge generative diffusion agents policy
control dynamics field energy systems stochastic gradient convergence bounds estimation
regression bayesian sampling adversarial federated privacy fairness interpretable causal
contrastive supervised unsupervised self benchmark video visual vision speech audio retrieval
reasoning instruction tuning pretraining fine scaling sparse low rank matrix tensor kernel
variational autoencoder flow score noise denoising latent embedding encoder decoder token
context memory recurrent convolutional spectral clustering manifold geometric topology
equivariant symmetry physics molecular protein chemistry materials crystal spin magnetic
superconductivity topological phase transition lattice gauge cosmology galaxy dark matter
gravitational waves black hole neutron star stellar planetary exoplanet solar plasma fluid
turbulence navier stokes partial differential equations numerical finite element mesh solver
operator koopman hamiltonian lagrangian entropy information theoretic channel coding wireless
communication signal processing radar antenna beamforming power grid energy battery robot
manipulation locomotion navigation planning autonomous driving trajectory tracking pose human
motion hand face recognition medical clinical patient health imaging mri ct pathology genomic
cell drug discovery molecule docking retrosynthesis catalyst economics market auction game
equilibrium mechanism voting social media misinformation hate toxic bias alignment safety
jailbreak hallucination retrieval augmented chain thought prompting code program synthesis
software bug vulnerability compiler hardware accelerator gpu memory bandwidth quantization
pruning distillation compression mixture experts routing sparse attention long context
streaming online continual lifelong meta few shot zero transfer domain adaptation
generalization out distribution uncertainty calibration conformal ensemble probabilistic
gaussian process kernel hilbert space random features neural tangent infinite width lottery
ticket grokking emergence mechanistic interpretability circuits probing steering vectors
preference reward rlhf dpo ppo bandit regret exploration offline imitation inverse world
simulation physics informed surrogate emulator weather climate forecasting precipitation
earth satellite remote sensing hyperspectral point cloud lidar depth stereo nerf gaussian
splatting rendering 3d reconstruction mesh shape scene graph layout editing inpainting
super resolution restoration deblurring compression codec watermark steganography forensics
""")

STOPWORDS = _words(
    "the of and a in to we is for that on with this by are as an be our which from it can "
    "at these such or not has have its also both their than into over under between while"
)
TITLE_FUNCTION_WORDS = ("for", "of", "with", "via", "in", "the", "a", "and", "on", "is", "all")

FIRST_NAMES = _words(
    "Ana José Łukasz Zoë François Müller Søren Jiří Chloé Ægir Björn Dmitri Wei Yuki Priya "
    "Olumide Fatima Carlos Elena Hiroshi Mei Amir Sofia Lars Ngozi Rafael Ines Tomás Noémie "
    "Jun Li Xin Yan Hao Ming Ravi Anil Sanjay Deepa Kofi Amara Omar Layla Ivan Olga Anna Marco "
    "Giulia Pierre Claire Hans Greta Liam Emma Noah Olivia Ethan Mia Lucas Sara David Maria"
)
# The most common surnames on arXiv papers, most frequent first; made-up ones form the tail.
LAST_NAMES = _words(
    "Zhang Wang Li Liu Chen Yang Zhao Huang Wu Zhou Xu Sun Ma Zhu Hu Guo He Lin Gao Luo Kim Lee "
    "Park Choi Nguyen Tran Kumar Singh Sharma Gupta Patel Smith Johnson Williams Brown Jones "
    "Müller Schmidt Schneider Fischer Weber Meyer Wagner Becker Tanaka Suzuki Sato Takahashi "
    "Watanabe Ito Yamamoto Nakamura Rossi Russo Ferrari Esposito Bianchi García Fernández "
    "López Martínez Rodríguez Pérez González Sánchez Dubois Martin Bernard Petit Durand Leroy "
    "Moreau Lefèvre Nowak Kowalski Wiśniewski Novák Svoboda Ivanov Smirnov Kuznetsov Popov "
    "Svensson Johansson Andersson Björklund Øberg Hansen Nielsen Jensen Okafor Adeyemi Haddad "
    "Yılmaz Çelik Kaya Cohen Levi Ivanović Horvat Costa Silva Santos Oliveira Pereira"
)

SYLLABLES = _words(
    "ka ri to mo ne la vi sa pe ru di go ba te lo mi ze xu fa qi ho ny bre stra tion ment "
    "ic al er ous ive ism graph morph tron ium ex pro syn"
)
# Categories by how busy they are on arXiv (a Zipf share each); a paper lists one to three.
CATEGORIES = _words(
    "cs.LG cs.CV cs.CL cs.AI stat.ML quant-ph hep-th cond-mat.mes-hall cs.RO eess.SP math.OC "
    "astro-ph.GA cs.CR physics.optics math.PR cond-mat.str-el gr-qc cs.IT hep-ph cs.NE "
    "astro-ph.CO eess.IV cs.SE cs.DS math.NA q-bio.QM physics.flu-dyn cs.HC econ.EM math.AP"
)

COMMON_RANKS = range(60)  # "model", "learning", … : 2-8% of titles, 10-30% of abstracts
RARE_RANKS = range(2_000, 40_000)  # the tail: tens to hundreds of papers each at 1M
_LETTERS = re.compile(r"[^\W\d_]+")


def vocabulary(size: int, rng: random.Random) -> list[str]:
    """The real terms, most frequent first, then made-up words for the long tail."""
    words = list(dict.fromkeys(TERMS))
    seen = set(words) | set(STOPWORDS)
    while len(words) < size:
        word = "".join(rng.choices(SYLLABLES, k=rng.randint(2, 4)))
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


def zipf_cumulative(n: int, offset: float = 50.0) -> list[float]:
    """Zipf-Mandelbrot weights 1/(rank + offset), as cumulative weights for random.choices.

    Function words are drawn separately (STOPWORDS); among content words the offset keeps the
    most common ones ("model", "learning") in roughly a third of abstracts, as on arXiv, instead
    of in nearly all of them as a plain 1/rank law would.
    """
    return list(itertools.accumulate(1.0 / (rank + offset) for rank in range(1, n + 1)))


class PaperFactory:
    """Synthetic papers: Zipf-Mandelbrot word frequencies, realistic lengths and author names.

    Titles and abstracts are windows at random offsets into large pre-sampled token pools, which
    keeps per-word document frequencies right and generation ~10x faster than sampling each word.
    """

    def __init__(self, seed: int) -> None:
        self.rng = rng = random.Random(seed)
        self.vocab = vocabulary(40_000, rng)
        self.rank = {word: rank for rank, word in enumerate(self.vocab)}
        content = rng.choices(self.vocab, cum_weights=zipf_cumulative(len(self.vocab)), k=2_000_000)
        self.abstract_pool = content + rng.choices(STOPWORDS, k=len(content) // 2)
        rng.shuffle(self.abstract_pool)
        # Titles lean harder on the field's vocabulary: "model" is in ~8% of them.
        title_words = rng.choices(
            self.vocab, cum_weights=zipf_cumulative(len(self.vocab), offset=10.0), k=500_000
        )
        self.title_pool = title_words + rng.choices(TITLE_FUNCTION_WORDS, k=75_000)
        rng.shuffle(self.title_pool)
        # Surnames: the real list first (Zhang on ~3% of papers), then 20,000 rare made-up ones.
        surnames = list(LAST_NAMES)
        seen = set(surnames) | {word.capitalize() for word in self.vocab}
        while len(surnames) < 20_000:
            name = "".join(rng.choices(SYLLABLES, k=rng.randint(2, 3))).capitalize()
            if name not in seen:
                seen.add(name)
                surnames.append(name)
        self.surnames = surnames
        self.surname_weights = zipf_cumulative(len(surnames), offset=5.0)
        self.category_weights = zipf_cumulative(len(CATEGORIES), offset=1.0)
        self.base = dt.datetime(2015, 1, 1, tzinfo=dt.UTC)

    def title(self) -> str:
        length = self.rng.randint(5, 12)
        start = self.rng.randrange(len(self.title_pool) - length)
        return " ".join(self.title_pool[start : start + length]).capitalize()

    def abstract(self) -> str:
        length = self.rng.randint(100, 250)
        start = self.rng.randrange(len(self.abstract_pool) - length)
        return " ".join(self.abstract_pool[start : start + length]) + "."

    def authors(self) -> list[str]:
        rng = self.rng
        count = min(12, 1 + int(rng.expovariate(1 / 3.5)))
        last = rng.choices(self.surnames, cum_weights=self.surname_weights, k=count)
        return [f"{rng.choice(FIRST_NAMES)} {name}" for name in last]

    def categories(self) -> list[str]:
        picked = self.rng.choices(CATEGORIES, cum_weights=self.category_weights, k=3)
        return list(dict.fromkeys(picked[: self.rng.choice((1, 1, 2, 3))]))

    def rows(self, count: int, fetched: str) -> Iterator[tuple[tuple[object, ...], list[str]]]:
        """Papers rows (the columns of ``PAPER_COLUMNS``) and their categories, oldest first."""
        rng = self.rng
        for n in range(count):
            # New-style ids, in announcement order (yymm.nnnnn), so ids grow with time.
            month = n // 20_000
            year, mon = 15 + month // 12, 1 + month % 12
            arxiv_id = f"{year:02d}{mon:02d}.{n % 20_000 + 1:05d}"
            when = utc_text(self.base + dt.timedelta(minutes=n * 2))
            categories = self.categories()
            row = (
                arxiv_id,
                rng.randint(1, 3),
                self.title(),
                self.abstract(),
                json.dumps(self.authors(), ensure_ascii=False),
                categories[0],
                when,
                when,
                fetched,
            )
            yield row, categories


PAPER_COLUMNS = (
    "arxiv_id",
    "version",
    "title",
    "abstract",
    "authors",
    "primary_category",
    "published",
    "updated",
    "fetched_at",
)


# -- building and caching the corpus --------------------------------------------------------------


def corpus_key(count: int, seed: int) -> str:
    return f"c{CORPUS_VERSION}_n{count}_s{seed}"


def fill_sqlite(path: Path, count: int, factory: PaperFactory, batch: int = 50_000) -> float:
    """Bulk-insert ``count`` papers (FTS5 triggers index them); returns the seconds taken."""
    started = time.perf_counter()
    fetched = utc_text(dt.datetime.now(dt.UTC))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # a throwaway benchmark database
    conn.execute("PRAGMA cache_size = -262144")  # 256 MiB while loading
    rows = factory.rows(count, fetched)
    columns = ", ".join(PAPER_COLUMNS)
    marks = ", ".join("?" for _ in PAPER_COLUMNS)
    done = 0
    while chunk := list(itertools.islice(rows, batch)):
        conn.execute("BEGIN")
        conn.executemany(f"INSERT INTO papers ({columns}) VALUES ({marks})", [r for r, _ in chunk])
        conn.executemany(
            "INSERT INTO paper_categories (arxiv_id, category, position) VALUES (?, ?, ?)",
            [(r[0], c, i) for r, cats in chunk for i, c in enumerate(cats)],
        )
        conn.execute("COMMIT")
        done += len(chunk)
        _progress(done, started)
    conn.execute("PRAGMA optimize")
    conn.close()
    return time.perf_counter() - started


def _progress(done: int, started: float) -> None:
    if done % 200_000 == 0 or done < 200_000:
        elapsed = time.perf_counter() - started
        print(f"  {done:>9,} papers  {elapsed:6.1f} s  ({done / elapsed:,.0f}/s)", flush=True)


async def fill_postgres(url: str, count: int, factory: PaperFactory, batch: int = 50_000) -> float:
    """``fill_sqlite`` for PostgreSQL: COPY in batches, the server computing the generated
    columns; the papers' GIN (and other non-unique) indexes are dropped first and rebuilt at
    the end, minutes faster than maintaining them row by row, and the same indexes."""
    import asyncpg  # only this mode needs the driver itself

    started = time.perf_counter()
    fetched = utc_text(dt.datetime.now(dt.UTC))
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'papers' "
            "AND schemaname = current_schema() AND indexdef NOT LIKE 'CREATE UNIQUE%'"
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        rows = factory.rows(count, fetched)
        done = 0
        while chunk := list(itertools.islice(rows, batch)):
            records = [
                (*r[:6], *(dt.datetime.fromisoformat(str(t)) for t in r[6:])) for r, _ in chunk
            ]
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "papers", records=records, columns=list(PAPER_COLUMNS)
                )
                await conn.copy_records_to_table(
                    "paper_categories",
                    records=[(r[0], c, i) for r, cats in chunk for i, c in enumerate(cats)],
                    columns=["arxiv_id", "category", "position"],
                )
            done += len(chunk)
            _progress(done, started)
        await conn.execute("SET maintenance_work_mem = '1GB'")
        for index in indexes:
            print(f"  index {index['indexname']} …", flush=True)
            await conn.execute(index["indexdef"])
        await conn.execute("VACUUM ANALYZE papers")
        await conn.execute("VACUUM ANALYZE paper_categories")
    finally:
        await conn.close()
    return time.perf_counter() - started


def _asyncpg_dsn(url: str | URL) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _shown(url: str | URL) -> str:
    return make_url(url).render_as_string(hide_password=True)


async def _migrate(url: str) -> None:
    """Bring a database (new or cached) to the head revision, saying how long it took."""
    started = time.perf_counter()
    db = await open_database(url, migrate=False)
    try:
        before = await db.current_revision()
        await db.upgrade()
        after = await db.current_revision()
    finally:
        await db.close()
    if before not in (None, after):
        print(f"migrated {before} → {after} in {time.perf_counter() - started:.1f} s")


def sqlite_corpus(args: argparse.Namespace, factory: PaperFactory) -> str:
    """The URL of the cached (or built) SQLite corpus."""
    if args.db is not None:
        path: Path = args.db
    else:
        cache = args.cache_dir or Path(tempfile.gettempdir()) / "hotpapers-bench"
        cache.mkdir(parents=True, exist_ok=True)
        path = cache / f"search_{corpus_key(args.papers, args.seed)}.db"
    if args.rebuild and path.exists():
        for stale in (path, *(path.with_name(path.name + s) for s in ("-wal", "-shm"))):
            stale.unlink(missing_ok=True)
    if not path.exists():
        building = path.with_name(path.name + ".building")
        for stale in (building, *(building.with_name(building.name + s) for s in ("-wal", "-shm"))):
            stale.unlink(missing_ok=True)
        print(f"building {args.papers:,} papers in {building}")
        asyncio.run(_migrate(f"sqlite+aiosqlite:///{building}"))
        seconds = fill_sqlite(building, args.papers, factory)
        building.rename(path)
        print(f"built in {seconds:.0f} s; {path.stat().st_size / 2**20:,.0f} MiB")
    else:
        print(f"reusing {path} ({path.stat().st_size / 2**20:,.0f} MiB)")
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(_migrate(url))
    return url


async def _server_connect(url: URL, database: str | None = None) -> Any:
    import asyncpg

    target = url if database is None else url.set(database=database)
    return await asyncpg.connect(_asyncpg_dsn(target))


async def postgres_corpus(args: argparse.Namespace, factory: PaperFactory) -> str:
    """The URL of the cached (or built) PostgreSQL corpus: ``--url``, or a database named after
    the corpus on the server of HOTPAPERS_TEST_POSTGRES_URL, made under a temporary name."""
    key = corpus_key(args.papers, args.seed)
    comment = f"hotpapers bench_search corpus {key}"
    if args.url:
        url = make_url(args.url)
        conn = await _server_connect(url)
        try:
            held = await conn.fetchval(
                "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                "WHERE datname = current_database()"
            )
            has_papers = await conn.fetchval(
                "SELECT to_regclass('papers') IS NOT NULL"
            ) and await conn.fetchval("SELECT EXISTS (SELECT FROM papers)")
        finally:
            await conn.close()
        if held == comment or args.reuse:
            print(f"reusing {_shown(url)} ({held or 'as it is'})")
        elif has_papers and not args.rebuild:
            raise SystemExit(
                f"{_shown(url)} holds papers that are not this corpus ({key}): pass --reuse "
                "to measure it as it is, or --rebuild to empty and refill it (destroys its data)"
            )
        else:
            await _build_postgres(url, args, factory, comment)
        await _migrate(url.render_as_string(hide_password=False))
        return url.render_as_string(hide_password=False)

    server = os.environ.get(POSTGRES_URL_VARIABLE)
    if not server:
        raise SystemExit(
            f"--backend postgresql needs a server: set {POSTGRES_URL_VARIABLE} "
            "(postgresql+asyncpg://user:password@host:port/db; `bash .ci/postgres.sh start` "
            "makes a throwaway one) or pass --url for an explicit database"
        )
    server_url = make_url(server)
    name = f"hp_bench_search_{key}"
    building = f"{name}_building"
    conn = await _server_connect(server_url)
    try:
        exists = await conn.fetchval(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = $1",
            name,
        )
        if exists is not None and args.rebuild:
            await conn.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            exists = None
        if exists is None:
            await conn.execute(f'DROP DATABASE IF EXISTS "{building}" WITH (FORCE)')
            await conn.execute(f'CREATE DATABASE "{building}" TEMPLATE template0')
    finally:
        await conn.close()
    if exists is None:
        await _build_postgres(server_url.set(database=building), args, factory, comment)
        conn = await _server_connect(server_url)
        try:
            await conn.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        finally:
            await conn.close()
    else:
        print(f"reusing database {name}")
    url = server_url.set(database=name).render_as_string(hide_password=False)
    await _migrate(url)
    return url


async def _build_postgres(
    url: URL, args: argparse.Namespace, factory: PaperFactory, comment: str
) -> None:
    rendered = url.render_as_string(hide_password=False)
    print(f"building {args.papers:,} papers in {_shown(url)}")
    db = await open_database(rendered, migrate=False)
    try:
        if args.rebuild:
            await db.downgrade("base")
        await db.upgrade()
    finally:
        await db.close()
    seconds = await fill_postgres(rendered, args.papers, factory)
    conn = await _server_connect(url)
    try:
        size = await conn.fetchval("SELECT pg_database_size(current_database())")
        await conn.execute(f"COMMENT ON DATABASE \"{url.database}\" IS '{comment}'")
    finally:
        await conn.close()
    print(f"built in {seconds:.0f} s; database {int(size) / 2**20:,.0f} MiB")


# -- queries ----------------------------------------------------------------------------------


@dataclass
class Kind:
    """One kind of query: its calls, and what it is held to."""

    name: str
    group: str  # "2 words", "search", "lookup" or "autocomplete"
    calls: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Sample:
    arxiv_id: str
    title: list[str]
    abstract: list[str]
    authors: list[str]


async def sample_papers(db: Database, count: int, total: int, rng: random.Random) -> list[Sample]:
    """``count`` stored papers at random (ids are 1..total in a bench corpus)."""
    ids = rng.sample(range(1, total + 1), min(count, total))
    async with db.read() as conn:
        columns = (papers.c.arxiv_id, papers.c.title, papers.c.abstract, papers.c.authors)
        rows = (await conn.execute(select(*columns).where(papers.c.id.in_(ids)))).all()
    out = [
        Sample(
            row.arxiv_id,
            _LETTERS.findall(row.title.lower()),
            _LETTERS.findall(row.abstract.lower()),
            list(row.authors),
        )
        for row in rows
    ]
    rng.shuffle(out)
    return out


def build_kinds(
    samples: Sequence[Sample], factory: PaperFactory, per_kind: int, rng: random.Random
) -> list[Kind]:
    """The measured calls of each kind, drawn from ``samples``."""
    rank = factory.rank

    def cls(word: str) -> str:
        r = rank.get(word)
        if r is None:
            return "other"
        if r in COMMON_RANKS:
            return "common"
        return "rare" if r in RARE_RANKS else "mid"

    def pick(words: Sequence[str], wanted: str) -> str | None:
        found = [w for w in dict.fromkeys(words) if cls(w) == wanted]
        return rng.choice(found) if found else None

    def pair(first: str, second: str) -> Callable[[Sample], str | None]:
        def make(s: Sample) -> str | None:
            # Title words first (what people remember of a paper), else the abstract's.
            for words in (s.title, s.title + s.abstract):
                a = pick(words, first)
                b = pick([w for w in words if w != a], second)
                if a and b:
                    return f"{a} {b}"
            return None

        return make

    def no_match(_s: Sample) -> str:
        tail = factory.vocab[RARE_RANKS.start :]
        return f"{rng.choice(tail)} {rng.choice(tail)}"

    def one(wanted: str) -> Callable[[Sample], str | None]:
        return lambda s: pick(s.title, wanted) or pick(s.abstract, wanted)

    def title_fragment(s: Sample) -> str:
        length = rng.randint(3, 6)
        start = rng.randrange(max(1, len(s.title) - length + 1))
        return " ".join(s.title[start : start + length])

    def author(s: Sample) -> str:
        name = rng.choice(s.authors)
        return name if rng.random() < 0.5 else name.split()[-1]

    def quoted(s: Sample) -> str:
        start = rng.randrange(max(1, len(s.title) - 1))
        return '"' + " ".join(s.title[start : start + 2]) + '"'

    def short_prefix(s: Sample) -> str:
        words = [w for w in s.title if w not in TITLE_FUNCTION_WORDS] or s.title
        return rng.choice(words)[: rng.randint(1, 4)]

    def partial_word(s: Sample) -> str:
        start = rng.randrange(max(1, len(s.title) - 1))
        words = s.title[start : start + rng.randint(2, 3)]
        last = words[-1]
        return " ".join([*words[:-1], last[: rng.randint(2, max(2, len(last) - 1))]])

    def author_prefix(s: Sample) -> str:
        surname = rng.choice(s.authors).split()[-1]
        return surname[: rng.randint(3, max(3, len(surname) - 1))]

    def id_prefix(s: Sample) -> str:
        return s.arxiv_id[: rng.randint(6, 9)]

    makers: list[tuple[str, str, Callable[[Sample], str | None]]] = [
        ("2w common+common", "2 words", pair("common", "common")),
        ("2w common+rare", "2 words", pair("common", "rare")),
        ("2w rare+rare", "2 words", pair("rare", "rare")),
        ("2w no match", "2 words", no_match),
        ("1w common", "search", one("common")),
        ("1w rare", "search", one("rare")),
        ("title fragment", "search", title_fragment),
        ("author", "search", author),
        ('quoted "a b"', "search", quoted),
        ("id lookup", "lookup", lambda s: s.arxiv_id),
        ("ac 1-4 letters", "autocomplete", short_prefix),
        ("ac partial word", "autocomplete", partial_word),
        ("ac author", "autocomplete", author_prefix),
        ("ac id prefix", "autocomplete", id_prefix),
    ]
    kinds = []
    for name, group, make in makers:
        kind = Kind(name, group)
        for sample in itertools.cycle(samples):
            if len(kind.calls) >= per_kind:
                break
            call = make(sample)
            if call:
                kind.calls.append(call)
        kinds.append(kind)
    return kinds


# -- measuring --------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


@dataclass
class Measured:
    kind: Kind
    latencies: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # this process's CPU time, every thread
    hits: int = 0
    slowest: list[tuple[float, str]] = field(default_factory=list)


async def measure(url: str, args: argparse.Namespace, factory: PaperFactory) -> bool:
    """Print the latency table; True when every target is met."""
    db = await open_database(url, migrate=False)
    repo = PaperRepository(db)
    backend = "sqlite" if db.is_sqlite else "postgresql"
    rng = random.Random(args.seed + 1)
    total = await repo.count()
    async with db.read() as conn:
        if db.is_sqlite:
            version = await conn.scalar(text("SELECT sqlite_version()"))
            print(f"sqlite {version}, {total:,} papers")
        else:
            settings = [
                f"{name}={await conn.scalar(text(f'SHOW {name}'))}"
                for name in ("server_version", "shared_buffers", "work_mem", "jit")
            ]
            # Pages not in shared_buffers come from the OS cache: the figures depend on its size.
            print(f"postgresql {' '.join(settings)}, {total:,} papers")
    samples = await sample_papers(db, min(total, 4 * args.iterations), total, rng)
    kinds = build_kinds(samples, factory, args.iterations, rng)

    def runner(kind: Kind) -> Callable[[str], Awaitable[Sequence[object]]]:
        if kind.group == "autocomplete":
            return repo.autocomplete
        if kind.group == "lookup":

            async def get(arxiv_id: str) -> list[object]:
                paper = await repo.get(arxiv_id)
                return [] if paper is None else [paper]

            return get
        return lambda q: repo.search(q, limit=args.limit)

    # Warm-up: every call once, as a running bot's caches would be warm for its members.
    started = time.perf_counter()
    for kind in kinds:
        run = runner(kind)
        for call in kind.calls:
            await run(call)
    print(f"warm-up pass: {time.perf_counter() - started:.1f} s")

    results = [Measured(kind) for kind in kinds]
    for _ in range(args.repeat):
        # Interleave the kinds, so that a burst of load on the shared machine spreads over them.
        order = [(m, call) for m in results for call in m.kind.calls]
        rng.shuffle(order)
        for m, call in order:
            run = runner(m.kind)
            start, start_cpu = time.perf_counter(), time.process_time()
            found = await run(call)
            ms = (time.perf_counter() - start) * 1000
            m.cpu.append((time.process_time() - start_cpu) * 1000)
            m.latencies.append(ms)
            m.hits += len(found)
            m.slowest.append((ms, call))
    await db.close()

    two_word = TWO_WORD_TARGET_MS[backend]
    print(
        f"\n{'kind':<18} {'n':>5} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'hits/q':>7} {'cpu p50':>8} {'cpu p99':>8}  target"
    )
    met = True
    for m in results:
        target = {"2 words": two_word, "autocomplete": AUTOCOMPLETE_TARGET_MS}.get(m.kind.group)
        p99 = percentile(m.latencies, 99)
        verdict = ""
        if target is not None:
            ok = p99 <= target
            met &= ok
            verdict = f"p99 ≤ {target:g} {'ok' if ok else 'MISSED'}"
        print(
            f"{m.kind.name:<18} {len(m.latencies):>5} {percentile(m.latencies, 50):>8.2f} "
            f"{percentile(m.latencies, 95):>8.2f} {p99:>8.2f} {max(m.latencies):>8.2f} "
            f"{m.hits / len(m.latencies):>7.1f} {percentile(m.cpu, 50):>8.2f} "
            f"{percentile(m.cpu, 99):>8.2f}  {verdict}"
        )
    for group, target in (("2 words", two_word), ("autocomplete", AUTOCOMPLETE_TARGET_MS)):
        pooled = [ms for m in results if m.kind.group == group for ms in m.latencies]
        cpu = [ms for m in results if m.kind.group == group for ms in m.cpu]
        p99 = percentile(pooled, 99)
        print(
            f"{'all ' + group:<18} {len(pooled):>5} {percentile(pooled, 50):>8.2f} "
            f"{percentile(pooled, 95):>8.2f} {p99:>8.2f} {max(pooled):>8.2f} {'':>7} "
            f"{percentile(cpu, 50):>8.2f} {percentile(cpu, 99):>8.2f}  "
            f"p99 ≤ {target:g} {'ok' if p99 <= target else 'MISSED'}"
        )
    where = "the bench and SQLite" if backend == "sqlite" else "the bench only, not the server"
    print(f"(cpu: CPU time of {where}, which a busy machine does not inflate much)")
    if args.slowest:
        print("\nslowest calls:")
        for m in results:
            worst = sorted(m.slowest, reverse=True)[: args.slowest]
            print(f"  {m.kind.name}: " + ", ".join(f"{q!r} {ms:.1f}" for ms, q in worst))
    return met


def machine() -> str:
    cores = os.cpu_count() or 0
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else cores
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cores} cores ({usable} usable), load average {load}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgresql"), default=None)
    parser.add_argument(
        "--papers", type=int, default=1_000_000, help="corpus size (default 1,000,000)"
    )
    parser.add_argument("--iterations", type=int, default=300, help="calls per kind")
    parser.add_argument("--repeat", type=int, default=1, help="measured passes after warm-up")
    parser.add_argument("--limit", type=int, default=10, help="results per search")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--slowest", type=int, default=3, help="slowest calls shown per kind")
    parser.add_argument("--db", type=Path, help="SQLite: this file instead of the cache")
    parser.add_argument("--cache-dir", type=Path, help="SQLite: where cached corpora live")
    parser.add_argument(
        "--url", help="PostgreSQL: this database (postgresql+asyncpg://…) instead of the cache"
    )
    parser.add_argument("--reuse", action="store_true", help="measure --url/--db as it is")
    parser.add_argument("--rebuild", action="store_true", help="build the corpus again")
    args = parser.parse_args(argv)
    backend = args.backend or ("postgresql" if args.url else "sqlite")
    if args.url and backend != "postgresql":
        parser.error("--url is a PostgreSQL database: use it with --backend postgresql")

    print(f"machine: {machine()}")
    factory = PaperFactory(args.seed)
    if backend == "sqlite":
        if args.reuse and args.db is not None:
            url = f"sqlite+aiosqlite:///{args.db}"
        else:
            url = sqlite_corpus(args, factory)
    else:
        url = asyncio.run(postgres_corpus(args, factory))
    met = asyncio.run(measure(url, args, factory))
    print(f"\nmachine after: {machine()}")
    two_word = TWO_WORD_TARGET_MS[backend]
    print(
        f"targets ({backend}, warm p99): 2-word search ≤ {two_word:g} ms, autocomplete ≤ "
        f"{AUTOCOMPLETE_TARGET_MS:g} ms — {'PASS' if met else 'FAIL'}",
        flush=True,
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
