/// BEMSCore holds all the logic of the CU-BEMS import pipeline; the executables only parse arguments and call it.
package enum BEMS {
    /// The pipeline's version, recorded in every manifest so a new release reruns stages whose logic changed.
    package static let version = "0.1.0"
}
