"""Where `store: true` responses live: a small async interface and its embedded SQLite default.

A stored response is one row: the response object as the client got it, the input items of
its turn that no stored ancestor holds, and the id of the stored response it continued. A
continuation reads the whole chain in one query (a recursive CTE), so a 20-turn rollout
costs one read per turn, not twenty. Rows are keyed by (namespace, id): the namespace is the
API key's name, so one key never reads, continues or deletes another key's responses.

Bounds: rows older than `max_age_s` and, past `max_bytes` in total, the oldest rows are
deleted (a few times a minute at most, on the store's own thread). The database is a WAL
file: it survives a restart, and several worker processes can share it.

A Redis implementation only has to provide the same five methods (docs/responses.md).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson

from gateway.config import ConfigError

log = logging.getLogger("gateway.responses_store")


@dataclass(slots=True)
class StoredResponse:
    id: str
    namespace: str
    previous_id: str | None  # the stored response this one continued, if any
    created_at: float
    input: list[dict[str, Any]]  # this turn's input items not held by a stored ancestor
    response: dict[str, Any]  # the Response object as answered

    def encode(self) -> bytes:
        return orjson.dumps({"input": self.input, "response": self.response})


@dataclass(slots=True)
class Chain:
    """A stored response and its stored ancestors, oldest first; `complete` is False when an
    ancestor was deleted or expired (the history cannot be rebuilt then)."""

    records: list[StoredResponse]
    complete: bool

    def context(self) -> list[dict[str, Any]]:
        """Every item the chain's last response saw plus what it answered: the input of a
        continuation before its own new input."""
        items: list[dict[str, Any]] = []
        for record in self.records:
            items += record.input
            items += record.response.get("output") or []
        return items

    def input_items(self) -> list[dict[str, Any]]:
        """The input of the last response: the whole context it was prompted with."""
        items = self.context()
        last = self.records[-1].response.get("output") or []
        return items[: len(items) - len(last)] if last else items


class ResponseStore(Protocol):
    async def put(self, record: StoredResponse) -> None: ...

    async def get(self, namespace: str, response_id: str) -> StoredResponse | None: ...

    async def chain(self, namespace: str, response_id: str) -> Chain | None:
        """None when the response itself is not stored (or belongs to another namespace)."""
        ...

    async def delete(self, namespace: str, response_id: str) -> bool: ...

    async def aclose(self) -> None: ...


_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    previous_id TEXT,
    created_at REAL NOT NULL,
    size INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (namespace, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS responses_age ON responses (created_at);
CREATE TABLE IF NOT EXISTS totals (k INTEGER PRIMARY KEY CHECK (k = 0), bytes INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES (0, 0);
CREATE TRIGGER IF NOT EXISTS responses_in AFTER INSERT ON responses
    BEGIN UPDATE totals SET bytes = bytes + NEW.size; END;
CREATE TRIGGER IF NOT EXISTS responses_out AFTER DELETE ON responses
    BEGIN UPDATE totals SET bytes = bytes - OLD.size; END;
"""

# the chain of (namespace, id), newest first; depth-capped against a cycle in a broken file
_CHAIN = """
WITH RECURSIVE chain(id, previous_id, created_at, data, depth) AS (
    SELECT id, previous_id, created_at, data, 0 FROM responses WHERE namespace = ?1 AND id = ?2
    UNION ALL
    SELECT r.id, r.previous_id, r.created_at, r.data, chain.depth + 1
    FROM responses r JOIN chain ON r.namespace = ?1 AND r.id = chain.previous_id
    WHERE chain.depth < 100000
)
SELECT id, previous_id, created_at, data FROM chain ORDER BY depth DESC
"""

PRUNE_EVERY_S = 10.0


class SQLiteResponseStore:
    """The embedded default. Every query runs on one dedicated thread (SQLite connections are
    not shared across threads, and the event loop never waits on the disk)."""

    def __init__(self, path: Path, max_bytes: int, max_age_s: float) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="responses-store")
        self._db: sqlite3.Connection | None = None
        self._next_prune = 0.0

    # ---- on the store's thread ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10.0, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # durable across a crash of the process
            db.execute("PRAGMA secure_delete=ON")  # a deleted response is overwritten, not
            # left in free pages: deletion deletes
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def _put(self, record: StoredResponse) -> None:
        data = record.encode()
        db = self._conn()
        db.execute(
            "INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?, ?)",
            (record.namespace, record.id, record.previous_id, record.created_at, len(data), data),
        )
        now = time.time()
        if now >= self._next_prune:
            self._next_prune = now + PRUNE_EVERY_S
            self._prune(db, now)

    def _prune(self, db: sqlite3.Connection, now: float) -> None:
        aged = db.execute("DELETE FROM responses WHERE created_at < ?", (now - self.max_age_s,))
        removed = aged.rowcount
        total = "SELECT bytes FROM totals"
        if self.max_bytes and db.execute(total).fetchone()[0] > self.max_bytes:
            target = int(self.max_bytes * 0.9)  # headroom: not a prune on every put after
            while db.execute(total).fetchone()[0] > target:
                cur = db.execute(
                    "DELETE FROM responses WHERE (namespace, id) IN (SELECT namespace, id "
                    "FROM responses ORDER BY created_at LIMIT 256)"
                )
                removed += cur.rowcount
                if cur.rowcount == 0:
                    break
        if removed:
            log.info("responses store: %d old responses deleted", removed)

    def _decode(self, namespace: str, row: tuple[Any, ...]) -> StoredResponse:
        doc = orjson.loads(row[3])
        return StoredResponse(row[0], namespace, row[1], row[2], doc["input"], doc["response"])

    def _get(self, namespace: str, response_id: str) -> StoredResponse | None:
        row = (
            self._conn()
            .execute(
                "SELECT id, previous_id, created_at, data FROM responses "
                "WHERE namespace = ? AND id = ?",
                (namespace, response_id),
            )
            .fetchone()
        )
        return None if row is None else self._decode(namespace, row)

    def _chain(self, namespace: str, response_id: str) -> Chain | None:
        rows = self._conn().execute(_CHAIN, (namespace, response_id)).fetchall()
        if not rows:
            return None
        records = [self._decode(namespace, row) for row in rows]
        return Chain(records, records[0].previous_id is None)

    def _delete(self, namespace: str, response_id: str) -> bool:
        cur = self._conn().execute(
            "DELETE FROM responses WHERE namespace = ? AND id = ?", (namespace, response_id)
        )
        return cur.rowcount > 0

    # ---- the async interface -----------------------------------------------------------------

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def put(self, record: StoredResponse) -> None:
        await self._run(self._put, record)

    async def get(self, namespace: str, response_id: str) -> StoredResponse | None:
        return await self._run(self._get, namespace, response_id)

    async def chain(self, namespace: str, response_id: str) -> Chain | None:
        return await self._run(self._chain, namespace, response_id)

    async def delete(self, namespace: str, response_id: str) -> bool:
        return await self._run(self._delete, namespace, response_id)

    async def aclose(self) -> None:
        def close() -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        await self._run(close)
        self._pool.shutdown(wait=False)


class MemoryResponseStore:
    """`responses.store: memory`: the same rules in a dict (tests, throwaway gateways)."""

    def __init__(self, max_age_s: float = 30 * 86400) -> None:
        self.max_age_s = max_age_s
        self.rows: dict[tuple[str, str], StoredResponse] = {}

    async def put(self, record: StoredResponse) -> None:
        self.rows[(record.namespace, record.id)] = record

    async def get(self, namespace: str, response_id: str) -> StoredResponse | None:
        record = self.rows.get((namespace, response_id))
        if record is not None and record.created_at < time.time() - self.max_age_s:
            return None
        return record

    async def chain(self, namespace: str, response_id: str) -> Chain | None:
        record = await self.get(namespace, response_id)
        if record is None:
            return None
        records = [record]
        while records[-1].previous_id is not None and len(records) < 100000:
            parent = await self.get(namespace, records[-1].previous_id)
            if parent is None:
                return Chain(records[::-1], False)
            records.append(parent)
        return Chain(records[::-1], True)

    async def delete(self, namespace: str, response_id: str) -> bool:
        return self.rows.pop((namespace, response_id), None) is not None

    async def aclose(self) -> None:
        self.rows.clear()


# Walks a chain server-side: one round trip for any depth. KEYS[1] is the response's key,
# ARGV[1] the key prefix of its namespace; returns [complete (0|1), data newest first...].
_CHAIN_SCRIPT = """
local out = {1}
local key = KEYS[1]
for depth = 1, 100000 do
    local row = redis.call('HMGET', key, 'previous_id', 'data')
    if not row[2] then
        if depth == 1 then return {} end
        out[1] = 0
        return out
    end
    out[#out + 1] = row[2]
    if not row[1] or row[1] == '' then return out end
    key = ARGV[1] .. row[1]
end
return out
"""


class RedisResponseStore:
    """The fleet's store (`cluster.redis_url`): every gateway member reads the same chains.
    One hash per response, `{prefix}responses:{namespace hex}:{id}` with fields
    `previous_id`, `created_at`, `data`, expiring after `max_age_s`; a chain is read by one
    Lua script. The total size is Redis's to bound (`maxmemory`, `volatile-ttl`)."""

    def __init__(self, url: str, prefix: str, max_age_s: float, timeout_s: float = 1.0) -> None:
        from redis import asyncio as aioredis  # only fleets need the client

        self.redis = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        self.prefix = prefix + "responses:"
        self.ttl_ms = int(max_age_s * 1000)
        self._chain = self.redis.register_script(_CHAIN_SCRIPT)

    def _ns(self, namespace: str) -> str:
        return f"{self.prefix}{namespace.encode().hex()}:"

    def _decode(self, namespace: str, response_id: str, blob: bytes) -> StoredResponse:
        doc = orjson.loads(blob)
        return StoredResponse(response_id, namespace, doc.get("previous_id"),
                              doc["created_at"], doc["input"], doc["response"])  # fmt: skip

    async def put(self, record: StoredResponse) -> None:
        doc = {"previous_id": record.previous_id, "created_at": record.created_at,
               "input": record.input, "response": record.response}  # fmt: skip
        key = self._ns(record.namespace) + record.id
        mapping = {"previous_id": record.previous_id or "", "data": orjson.dumps(doc)}
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=mapping)
            pipe.pexpire(key, self.ttl_ms)
            await pipe.execute()

    async def get(self, namespace: str, response_id: str) -> StoredResponse | None:
        blob = await self.redis.hget(self._ns(namespace) + response_id, "data")
        return None if blob is None else self._decode(namespace, response_id, blob)

    async def chain(self, namespace: str, response_id: str) -> Chain | None:
        prefix = self._ns(namespace)
        rows = await self._chain(keys=[prefix + response_id], args=[prefix])
        if not rows:
            return None
        records = []
        for blob in rows[1:]:
            doc = orjson.loads(blob)
            response = doc["response"]
            records.append(StoredResponse(response.get("id", ""), namespace,
                                          doc.get("previous_id"), doc["created_at"],
                                          doc["input"], response))  # fmt: skip
        return Chain(records[::-1], bool(rows[0]))

    async def delete(self, namespace: str, response_id: str) -> bool:
        return bool(await self.redis.delete(self._ns(namespace) + response_id))

    async def aclose(self) -> None:
        await self.redis.aclose()


def open_store(config: Any) -> ResponseStore | None:
    """The store a config asks for (`config` is the GatewayConfig), or None when off.
    `auto`: the fleet's Redis when a `cluster:` block names one, else SQLite."""
    options = config.responses
    cluster = getattr(config, "cluster", None)  # the fleet block (docs/scaling.md)
    kind = options.store
    if kind == "auto":
        kind = "redis" if cluster is not None else "sqlite"
    if kind == "off":
        return None
    if kind == "memory":
        return MemoryResponseStore(options.max_age_s)
    if kind == "redis":
        if cluster is None:
            raise ConfigError("config error: responses.store: redis needs a `cluster:` block")
        timeout = getattr(cluster, "connect_timeout_s", 1.0)
        return RedisResponseStore(cluster.redis_url, cluster.key_prefix, options.max_age_s, timeout)
    path = Path(options.store_path).expanduser() if options.store_path else None
    path = path or config.server.state_path / "responses.db"
    return SQLiteResponseStore(path, options.max_bytes, options.max_age_s)
