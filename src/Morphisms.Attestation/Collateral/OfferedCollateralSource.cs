using Morphisms.Attestation.Verify;

namespace Morphisms.Attestation.Collateral;

/// <summary>
/// A relying party's own collateral source, with the collateral an attester sent beside its evidence used only where
/// it is at least as new as the relying party's own. Taking the attester's collateral as it comes would let it choose
/// the past: the TCB info from before a TCB recovery, still within its nextUpdate for about 30 days, rates its
/// unpatched platform UpToDate, and a PCK CRL from before its PCK was revoked does not list it. Intel's documents are
/// signed, so "newer" can only be something Intel published; an attester can bring collateral the relying party has
/// not fetched yet, never older.
/// </summary>
/// <remarks>
/// Each item is judged on its own, against the own source's answer for the quote's TEE, FMSPC and PCK CA: TCB info and
/// QE identity by <c>tcbEvaluationDataNumber</c> and <c>issueDate</c> (both must be at least the own item's), a CRL by
/// its issuer (the same) and <c>thisUpdate</c> (at least the own one's). An item the own source lacks comes from the
/// offered collateral; an offered item that cannot be read, or is for another TEE, FMSPC or CA, loses to the own one.
/// When the own source has nothing for the platform, the offered collateral is used as it is.
/// </remarks>
public sealed class OfferedCollateralSource : ICollateralSource
{
    private readonly ICollateralSource _own;
    private readonly DcapCollateral _offered;

    /// <summary>Prefers <paramref name="own"/>'s answers to <paramref name="offered"/> unless an offered item is at least as new.</summary>
    public OfferedCollateralSource(ICollateralSource own, DcapCollateral offered)
    {
        _own = own ?? throw new ArgumentNullException(nameof(own));
        _offered = offered ?? throw new ArgumentNullException(nameof(offered));
    }

    /// <summary>
    /// The items (<c>tcb_info</c>, <c>qe_identity</c>, <c>pck_crl</c>, <c>root_ca_crl</c>) taken from the offered collateral
    /// in the last answer because the own source had none to compare them with: their freshness went unchecked, which a
    /// relying party should say (an operator's collateral directory may lack a TEE or an FMSPC).
    /// </summary>
    public IReadOnlyList<string> Unchecked { get; private set; } = [];

    /// <inheritdoc />
    public async ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(request);
        var own = await _own.GetDcapCollateralAsync(request, cancellationToken).ConfigureAwait(false);
        Unchecked = [.. Missing(own, _offered)];
        return own is null ? _offered : Newest(request, own, _offered);
    }

    private static IEnumerable<string> Missing(DcapCollateral? own, DcapCollateral offered)
    {
        if (own?.TcbInfo is null && offered.TcbInfo is not null)
        {
            yield return "tcb_info";
        }

        if (own?.QeIdentity is null && offered.QeIdentity is not null)
        {
            yield return "qe_identity";
        }

        if (own?.PckCrl is null && offered.PckCrl is not null)
        {
            yield return "pck_crl";
        }

        if (own?.RootCaCrl is null && offered.RootCaCrl is not null)
        {
            yield return "root_ca_crl";
        }
    }

    /// <summary>
    /// Per item, <paramref name="offered"/>'s when it is at least as new as <paramref name="own"/>'s (or own has none),
    /// otherwise own's. Returns <paramref name="own"/> or <paramref name="offered"/> itself when every item comes from it.
    /// </summary>
    public static DcapCollateral Newest(DcapCollateralRequest request, DcapCollateral own, DcapCollateral offered)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(own);
        ArgumentNullException.ThrowIfNull(offered);

        var tcbInfo = OfferedTcbInfoWins(request, own.TcbInfo, offered.TcbInfo);
        var qeIdentity = OfferedIdentityWins(request, own.QeIdentity, offered.QeIdentity);
        var pckCrl = OfferedCrlWins(own.PckCrl, offered.PckCrl);
        var rootCrl = OfferedCrlWins(own.RootCaCrl, offered.RootCaCrl);
        bool[] choices = [tcbInfo, qeIdentity, pckCrl, rootCrl];
        if (!choices.Contains(true))
        {
            return own;
        }

        if (!choices.Contains(false))
        {
            return offered;
        }

        return new DcapCollateral
        {
            TcbInfo = tcbInfo ? offered.TcbInfo : own.TcbInfo,
            QeIdentity = qeIdentity ? offered.QeIdentity : own.QeIdentity,
            PckCrl = pckCrl ? offered.PckCrl : own.PckCrl,
            RootCaCrl = rootCrl ? offered.RootCaCrl : own.RootCaCrl,

            // Both sets are only candidate signers; the verifier checks each against the trusted roots.
            TcbSigningCertificates = [.. own.TcbSigningCertificates.Concat(offered.TcbSigningCertificates).DistinctBy(c => c.Thumbprint)],
            Origin = $"{own.Origin ?? "own collateral"}, with newer items from {offered.Origin ?? "the offered collateral"}",
        };
    }

    private static bool OfferedTcbInfoWins(DcapCollateralRequest request, SignedCollateralJson? own, SignedCollateralJson? offered)
    {
        if (own is null)
        {
            return offered is not null;
        }

        if (offered is null || Try(() => TcbInfo.Parse(offered.Body)) is not { } theirs)
        {
            return false;
        }

        if (theirs.Tee != request.Tee || !theirs.IsForFmspc(request.Fmspc))
        {
            return false;
        }

        // An unreadable own item is not outranked by anything: the verifier reports it rather than the attester's.
        return Try(() => TcbInfo.Parse(own.Body)) is { } mine
            && theirs.TcbEvaluationDataNumber >= mine.TcbEvaluationDataNumber && theirs.IssueDate >= mine.IssueDate;
    }

    private static bool OfferedIdentityWins(DcapCollateralRequest request, SignedCollateralJson? own, SignedCollateralJson? offered)
    {
        if (own is null)
        {
            return offered is not null;
        }

        if (offered is null || Try(() => EnclaveIdentity.Parse(offered.Body)) is not { } theirs || theirs.Tee != request.Tee)
        {
            return false;
        }

        return Try(() => EnclaveIdentity.Parse(own.Body)) is { } mine
            && theirs.Id == mine.Id
            && theirs.TcbEvaluationDataNumber >= mine.TcbEvaluationDataNumber && theirs.IssueDate >= mine.IssueDate;
    }

    private static bool OfferedCrlWins(byte[]? own, byte[]? offered)
    {
        if (own is null)
        {
            return offered is not null;
        }

        if (offered is null || Try(() => CertificateRevocationList.Parse(offered)) is not { } theirs)
        {
            return false;
        }

        // Same issuer (the PCK CA the request names, or the root): another CA's CRL says nothing about this chain.
        return Try(() => CertificateRevocationList.Parse(own)) is { } mine
            && theirs.Issuer.RawData.AsSpan().SequenceEqual(mine.Issuer.RawData)
            && theirs.ThisUpdate >= mine.ThisUpdate;
    }

    private static T? Try<T>(Func<T> parse)
        where T : class
    {
        try
        {
            return parse();
        }
        catch (Exception e) when (e is FormatException or ArgumentException or InvalidOperationException or System.Security.Cryptography.CryptographicException)
        {
            return null;
        }
    }
}
