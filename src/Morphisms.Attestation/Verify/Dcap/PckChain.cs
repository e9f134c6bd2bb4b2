using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Trust;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// The PCK certificate chain of a quote as far as it could be read and checked. Members are null
/// when the corresponding part was missing or unreadable; the reasons are in the check log.
/// </summary>
public sealed record PckChain
{
    /// <summary>The PCK (leaf) certificate.</summary>
    public X509Certificate2? Leaf { get; init; }

    /// <summary>The PCK Platform or Processor CA certificate.</summary>
    public X509Certificate2? Intermediate { get; init; }

    /// <summary>The trusted anchor the chain ends at (from <see cref="TrustAnchors.Intel"/>, never the root embedded in the quote).</summary>
    public IntelRoot? Root { get; init; }

    /// <summary>The PCK certificate's SGX extension.</summary>
    public PckExtensions? Extensions { get; init; }

    /// <summary>Which PCK CA issued the leaf.</summary>
    public PckCaType? CaType { get; init; }

    /// <summary>
    /// True when the chain was read and every signature from the PCK certificate up to a trusted anchor
    /// verified, with nothing else in the chain refused (the validity windows, which depend on the time of
    /// the check, aside). Only then are <see cref="Extensions"/> and <see cref="CaType"/> Intel's word
    /// rather than the quote's, and worth asking a collateral source about.
    /// </summary>
    public bool ReachesTrustedRoot { get; init; }

    /// <summary>True when the chain ends at a simulated root.</summary>
    public bool Simulated => Root?.Simulated ?? false;

    internal ECDsa? LeafKey { get; init; }
}
