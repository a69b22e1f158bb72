-- Usage ledger: one line per served request, and one per upstream
-- attempt when there were several (same request_id, attempt 1…n).
-- Money is bigint nano-units; latency and ttft are microseconds. Ids
-- carry no foreign keys: lines outlive the organizations, users and keys
-- they name (0: none).
--
-- usage_lines is partitioned by month (usage_lines_YYYYMM, UTC months),
-- created on demand by the store; retention drops whole partitions. A
-- partitioned table's unique keys must hold the partition key, so the
-- primary key holds time: a line's time never changes, so a replayed line
-- still hits it.

-- +goose Up
CREATE TABLE usage_lines (
    time              timestamptz NOT NULL,
    request_id        text COLLATE "C" NOT NULL,
    attempt           integer NOT NULL,
    organization_id   bigint NOT NULL,
    user_id           bigint NOT NULL,
    key_id            bigint NOT NULL,
    endpoint          text NOT NULL,
    model             text COLLATE "C" NOT NULL,
    provider_model    text NOT NULL,
    provider          text NOT NULL,
    status            integer NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost              bigint NOT NULL,
    kwh               double precision, -- NULL: unknown
    kgco2eq           double precision, -- NULL: unknown
    latency_us        bigint NOT NULL,
    ttft_us           bigint NOT NULL, -- 0: not streamed
    cancelled         boolean NOT NULL,
    PRIMARY KEY (request_id, attempt, time)
) PARTITION BY RANGE (time);
CREATE INDEX usage_lines_user_id_time ON usage_lines (user_id, time);
CREATE INDEX usage_lines_organization_id_time ON usage_lines (organization_id, time);

-- Daily sums of the requests' lines (attempt 0), by UTC day, kept by
-- Record in the transaction that inserts the lines, from the lines it
-- actually inserted (replays add nothing). It outlives the partitions
-- retention drops.
CREATE TABLE usage_daily (
    day               date NOT NULL,
    organization_id   bigint NOT NULL,
    user_id           bigint NOT NULL,
    model             text COLLATE "C" NOT NULL,
    requests          bigint NOT NULL,
    prompt_tokens     bigint NOT NULL,
    completion_tokens bigint NOT NULL,
    cost              bigint NOT NULL,
    kwh               double precision NOT NULL, -- lines of unknown energy add 0
    kgco2eq           double precision NOT NULL,
    PRIMARY KEY (day, organization_id, user_id, model)
);

-- +goose Down
DROP TABLE usage_daily;
DROP TABLE usage_lines; -- and its partitions
