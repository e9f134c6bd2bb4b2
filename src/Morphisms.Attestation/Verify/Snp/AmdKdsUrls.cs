using System.Globalization;
using Morphisms.Attestation.Abi.Snp;

namespace Morphisms.Attestation.Verify.Snp;

/// <summary>
/// Builds AMD Key Distribution Service URLs (AMD KDS interface specification #57230):
/// <c>/vcek/v1/{product}/{hwid}?blSPL=..&amp;teeSPL=..&amp;snpSPL=..&amp;ucodeSPL=..</c>,
/// <c>/{vcek|vlek}/v1/{product}/cert_chain</c> and <c>/{vcek|vlek}/v1/{product}/crl</c>.
/// </summary>
public static class AmdKdsUrls
{
    /// <summary>AMD's public KDS.</summary>
    public static readonly Uri DefaultBase = new("https://kdsintf.amd.com/");

    /// <summary>The URL of a chip's VCEK at a TCB. Turin identifies the chip by the first 8 bytes of CHIP_ID and adds fmcSPL.</summary>
    /// <exception cref="ArgumentException">CHIP_ID is masked (all zero) or has the wrong length.</exception>
    public static Uri Vcek(string product, ReadOnlySpan<byte> chipId, TcbVersion reportedTcb, Uri? baseUri = null)
    {
        if (chipId.Length != 64)
        {
            throw new ArgumentException($"CHIP_ID must be 64 bytes, got {chipId.Length}", nameof(chipId));
        }

        if (!chipId.ContainsAnyExcept((byte)0))
        {
            throw new ArgumentException("CHIP_ID is all zero (masked); the VCEK cannot be looked up", nameof(chipId));
        }

        var line = ProductLine(product);
        var turin = line == SnpProducts.Turin;
        var hwid = Convert.ToHexStringLower(turin ? chipId[..8] : chipId);
        var tcb = reportedTcb;
        var query = turin
            ? string.Create(CultureInfo.InvariantCulture, $"fmcSPL={tcb.Fmc ?? 0}&blSPL={tcb.Bootloader}&teeSPL={tcb.Tee}&snpSPL={tcb.Snp}&ucodeSPL={tcb.Microcode}")
            : string.Create(CultureInfo.InvariantCulture, $"blSPL={tcb.Bootloader}&teeSPL={tcb.Tee}&snpSPL={tcb.Snp}&ucodeSPL={tcb.Microcode}");
        return new Uri(baseUri ?? DefaultBase, $"vcek/v1/{line}/{hwid}?{query}");
    }

    /// <summary>The URL of a product's certificate chain (ASK or ASVK, then ARK), PEM.</summary>
    public static Uri CertificateChain(string product, SnpSigningKey signer, Uri? baseUri = null) =>
        new(baseUri ?? DefaultBase, $"{Endpoint(signer)}/v1/{ProductLine(product)}/cert_chain");

    /// <summary>The URL of a product's CRL, DER.</summary>
    public static Uri Crl(string product, SnpSigningKey signer, Uri? baseUri = null) =>
        new(baseUri ?? DefaultBase, $"{Endpoint(signer)}/v1/{ProductLine(product)}/crl");

    private static string Endpoint(SnpSigningKey signer) => signer == SnpSigningKey.Vlek ? "vlek" : "vcek";

    // Only known product names reach a URL, so nothing the evidence says can steer the request elsewhere.
    private static string ProductLine(string product) =>
        SnpProducts.FromProductName(product) ?? throw new ArgumentException($"'{product}' is not an SEV-SNP product line (Milan, Genoa, Turin)", nameof(product));
}
