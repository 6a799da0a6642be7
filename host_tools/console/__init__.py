"""``fieldterm console``: the regional operator's web console (issue 16).

It runs where the alert desk runs (it opens the sealed hit alerts with the desk's key) and
serves HTTPS on 127.0.0.1 by default with a certificate from the region's CA
(``fieldterm provision console-cert``). Pages: **Hits** (live, with the follow-up workflow),
**Fleet** (every provisioned terminal and what it last reported), **Region** (the regional
processes' health files). Live updates are server-sent events; every asset is served
locally. Accounts: ``fieldterm provision operator``; every operator action goes into the
hash-chained operator audit log (:mod:`.oplog`). See docs/console.md.

Modules: :mod:`.config` (what to run from), :mod:`.oplog` (audit chain), :mod:`.hits`
(SQLite store and workflow), :mod:`.fleet` (terminal states), :mod:`.region` (regional
health), :mod:`.feed` (MQTT: alert batches and status), :mod:`.auth` (sessions, CSRF,
throttling), :mod:`.i18n` (strings), :mod:`.app` (the Starlette application),
:mod:`.cli` (the command).
"""
