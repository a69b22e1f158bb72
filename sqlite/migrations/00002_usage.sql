-- Usage ledger: one line per served request, and one per upstream
-- attempt when there were several (same request_id, attempt 1…n).
-- Times are unix microseconds (UTC); money is int64 nano-units; latency
-- and ttft are microseconds. Ids carry no foreign keys: lines outlive the
-- organizations, users and keys they name (0: none).

-- +goose Up
CREATE TABLE usage_lines (
    time              INTEGER NOT NULL,
    request_id        TEXT    NOT NULL,
    attempt           INTEGER NOT NULL,
    organization_id   INTEGER NOT NULL,
    user_id           INTEGER NOT NULL,
    key_id            INTEGER NOT NULL,
    endpoint          TEXT    NOT NULL,
    model             TEXT    NOT NULL,
    provider_model    TEXT    NOT NULL,
    provider          TEXT    NOT NULL,
    status            INTEGER NOT NULL,
    prompt_tokens     INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    cost              INTEGER NOT NULL,
    kwh               REAL, -- NULL: unknown
    kgco2eq           REAL, -- NULL: unknown
    latency_us        INTEGER NOT NULL,
    ttft_us           INTEGER NOT NULL, -- 0: not streamed
    cancelled         INTEGER NOT NULL CHECK (cancelled IN (0, 1)),
    UNIQUE (request_id, attempt) -- replays are skipped
);
CREATE INDEX usage_lines_user_id_time ON usage_lines (user_id, time);
CREATE INDEX usage_lines_organization_id_time ON usage_lines (organization_id, time);

-- +goose Down
DROP TABLE usage_lines;
