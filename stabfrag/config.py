"""Frozen run configuration: paths, weights, limits."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from stabfrag.errors import ConfigError

BRANCHES = ("stab", "scen", "prof")
# A close that jumps and reverts by more than this many robust daily moves is a bad tick
# (stabfrag.ingest.ticks); 0 turns the rule off.
BAD_TICK_MULTIPLE = 10.0
# A reported fundamental older than this many days is not used (a quarterly figure, one
# missed report and some lag).
FUNDAMENTALS_STALENESS_DAYS = 400
# An entity whose last price is older than this many calendar days has no state (a delisted
# name must not look calm forever).
MAX_STALENESS_DAYS = 7
# A backfill chunk's memory budget (engine.budget turns it into calendar days per chunk).
DEFAULT_MEMORY = "3GB"


# The market factors a build may declare (`--factors equity=SPY,rates=TLT,...`).
FACTOR_ROLES = ("equity", "rates", "credit", "fx", "commodity")


def packaged(*parts: str) -> Path:
    """A file or folder shipped inside the package (models, scenario library, SQL).

    The one resolver for packaged files: the scenario library and the SQL files live at the
    top of the repository and the package links to them, so an editable and a plain install
    both find them here.
    """
    return Path(str(resources.files("stabfrag").joinpath(*parts)))


def _pairs_text(value: object, flag: str, form: str) -> str:
    """The 'NAME=VALUE,...' text of an option given as text or as a mapping (the library
    passes mappings): both are then checked alike; any other type is refused."""
    if isinstance(value, dict):
        value = ",".join(f"{name}={item}" for name, item in value.items())
    if not isinstance(value, str):
        raise ConfigError(f"{flag}: {value!r} is not '{form}' or a mapping")
    return value


def parse_weights(text: str | dict[str, float] | None) -> dict[str, float] | None:
    """'stab=1,scen=0.5,prof=0.5' (or a mapping) -> dict; unnamed branches keep the
    model's defaults."""
    if text is None:
        return None
    text = _pairs_text(text, "--weights", "stab=1,scen=0.5")
    if not text:
        return None
    out: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if not sep or name not in BRANCHES:
            raise ConfigError(f"--weights: '{part}' is not one of {', '.join(BRANCHES)}=NUMBER")
        if name in out:
            raise ConfigError(f"--weights: {name} is given twice")
        try:
            w = float(value)
        except ValueError:
            raise ConfigError(f"--weights: '{value}' is not a number") from None
        if not w >= 0 or w == float("inf"):
            raise ConfigError(f"--weights: {name} must be a finite number >= 0")
        out[name] = w
    return out


def parse_factors(text: str | dict[str, str] | None) -> dict[str, str]:
    """'equity=SPY,rates=TLT' (or a mapping) -> {role: entity_id}, in FACTOR_ROLES order."""
    if not text:
        return {}
    text = _pairs_text(text, "--factors", "ROLE=ENTITY,...")
    out: dict[str, str] = {}
    for part in text.split(","):
        role, sep, entity = (s.strip() for s in part.partition("="))
        if not sep or role not in FACTOR_ROLES or not entity:
            raise ConfigError(
                f"--factors: '{part}' is not ROLE=ENTITY with ROLE one of {', '.join(FACTOR_ROLES)}"
            )
        if role in out:
            raise ConfigError(f"--factors: {role} is given twice")
        if entity in out.values():  # its states would read as both shocks at once
            other = next(r for r, e in out.items() if e == entity)
            raise ConfigError(
                f"--factors: {entity} plays {other} and {role}; give each its own series"
            )
        out[role] = entity
    return {r: out[r] for r in FACTOR_ROLES if r in out}


def format_factors(factors: dict[str, str]) -> str:
    return ",".join(f"{r}={e}" for r, e in factors.items())


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build or backfill reads."""

    prices: Path
    out: Path = Path("stabfrag-out")
    entities: Path | None = None
    profiles: Path | None = None
    scenarios: Path | None = None
    model_dir: Path | None = None
    model: str | None = None  # joint model id; None: the folder's default
    market: str | None = None  # context reference: a market entity; None: the build's universe
    factors: dict[str, str] | None = None  # factor role -> entity (a factor model's context)
    weights: dict[str, float] | None = None
    max_staleness_days: int = MAX_STALENESS_DAYS
    bad_tick: float = BAD_TICK_MULTIPLE
    chunk_days: int = 366
    resume: bool = False
    executor: str = "local"  # local, or ray: (chunk x entity block) tasks on a Ray cluster
    ray_address: str | None = None  # None: start Ray on this machine; auto, ray://HOST:10001
    entity_blocks: int = 1  # with ray: entity blocks per chunk of dates
    pg_dsn: str | None = None
    pg_table: str = "joint_embeddings"
    pg_staging: bool = False
    pg_replace_slice: bool = False  # a load replaces the whole slice, not only what it brings
    wait: bool = False  # wait for another run writing into `out`, rather than stop
    verify: bool = False  # with resume: check the bytes of every sealed file, not only sizes
    allow_mixed_models: bool = False  # build into a folder holding another model's dates
