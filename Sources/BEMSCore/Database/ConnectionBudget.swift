import Foundation
import Logging

/// How many connections a stage may open: never more than the environment's cap (default 100), and never above
/// `share` (80%) of the server's `max_connections`, counting the connections already in use by everyone
/// (`pg_stat_activity`). At the limit the stage waits for room instead of failing.
package struct ConnectionBudget: Sendable {
    /// The environment's own cap on this stage's connections (`environments.<env>.maxConnections`).
    package var cap: Int = 100
    /// The share of the server's `max_connections` that all sessions together may use with ours added.
    package var share: Double = 0.8

    package init(cap: Int = 100, share: Double = 0.8) {
        self.cap = cap
        self.share = share
    }

    /// What the server reports, and what we may add.
    package struct Reading: Sendable, Equatable {
        package var serverMax: Int
        package var inUse: Int
        /// Connections we may open now, besides the ones counted in ``inUse``.
        package var room: Int
    }

    /// The current room on the server `db` is connected to (its own session is in ``Reading/inUse``).
    package func reading(on db: PGConnection) throws -> Reading {
        let row = try db.exec(
            """
            SELECT current_setting('max_connections')::int,
                   (SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend')::int
            """
        ).rows.first
        let serverMax = Int(row?[0] ?? "") ?? 100
        let inUse = Int(row?[1] ?? "") ?? 0
        return Reading(serverMax: serverMax, inUse: inUse, room: room(serverMax: serverMax, inUse: inUse))
    }

    /// `min(cap, ⌊share × serverMax⌋ − inUse)`, never negative.
    package func room(serverMax: Int, inUse: Int) -> Int {
        max(0, min(cap, Int((share * Double(serverMax)).rounded(.down)) - inUse))
    }

    /// The number of extra connections (workers) to open, at most `wanted`, at least 1: waits, polling every
    /// `poll` seconds up to `timeout`, while the server has no room, logging that it waits.
    ///
    /// - Throws: ``PipelineError`` 69 when no room appears within `timeout`.
    package func workers(
        wanted: Int, on db: PGConnection, logger: Logger, poll: Double = 2, timeout: Double = 600,
        clock: RetryPolicy.Clock = .system
    ) throws -> (workers: Int, reading: Reading) {
        let start = clock.now()
        var r = try reading(on: db)
        var logged = false
        while r.room < 1 {
            guard clock.now() - start < timeout else {
                throw PipelineError(
                    .unavailable,
                    "no connection room on the server for \(Int(timeout)) s: \(r.inUse) of max_connections "
                        + "\(r.serverMax) in use, limit \(Int(share * 100))%")
            }
            if !logged {
                logger.warning(
                    "waiting for connection room",
                    metadata: [
                        "in.use": "\(r.inUse)", "max_connections": "\(r.serverMax)", "share": "\(share)",
                        "cap": "\(cap)",
                    ])
                logged = true
            }
            clock.sleep(poll)
            r = try reading(on: db)
        }
        let n = max(1, min(wanted, r.room))
        if n < wanted {
            logger.notice(
                "fewer workers than asked: connection limit",
                metadata: [
                    "workers": "\(n)", "asked": "\(wanted)", "in.use": "\(r.inUse)",
                    "max_connections": "\(r.serverMax)", "cap": "\(cap)",
                ])
        }
        return (n, r)
    }
}
