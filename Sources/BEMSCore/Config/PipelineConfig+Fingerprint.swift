extension PipelineConfig {
    /// The settings that change what parsing produces, as canonical text for run fingerprints.
    package var parsingFingerprint: String {
        let ranges = EquipmentType.allCases.map { type in
            let r = self.ranges[type]!
            return
                "\(type.rawValue)=\(r.valid.lowerBound)..\(r.valid.upperBound)/\(r.plausible.lowerBound)..\(r.plausible.upperBound)"
        }
        return "tz=\(timeZone);maxLine=\(maxLineBytes);threshold=\(rejectThreshold);" + ranges.joined(separator: ";")
    }

    /// The settings that change the chunks normalize writes.
    package var chunkingFingerprint: String {
        "days=\(chunk.days);maxRows=\(chunk.maxRows);zstd=\(chunk.zstdLevel)"
    }
}

/// Run fingerprints: a run is up to date when a new run would have the same fingerprint.
package enum Fingerprint {
    /// Hashes the stage, its logic version, the bems version and the given parts.
    package static func make(_ stage: Stage, _ parts: [String]) -> String {
        let text = (["\(stage.rawValue)/v\(stage.logicVersion)/bems-\(BEMS.version)"] + parts).joined(separator: "\n")
        return Digest.sha256Hex(Array(text.utf8))
    }
}
