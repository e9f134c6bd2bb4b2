using System.Runtime.CompilerServices;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Checks the quote's PCK chain against the CRLs in verified collateral: the PCK CRL must be signed by
/// the PCK CA of this very chain and must not list the PCK certificate; the root CA CRL must come from
/// the chain's root and must not list the PCK CA. (Whether the CRLs are present and current is the
/// collateral verifier's finding.)
/// </summary>
public static class PckRevocationChecker
{
    /// <summary>Check name: a certificate of the PCK chain is revoked.</summary>
    public const string Check = "dcap.pck_revoked";

    // Keyed by object identity: both objects come out of the chain and collateral caches, so a repeat
    // verification finds the outcome without re-checking CRL signatures or re-reading serial numbers.
    private static readonly ConditionalWeakTable<VerifiedCollateral, ConditionalWeakTable<PckChain, Outcome>> Outcomes = new();

    /// <summary>Records a failure for every revocation problem found.</summary>
    public static void Verify(PckChain chain, VerifiedCollateral collateral, CheckLog log)
    {
        var byChain = Outcomes.GetValue(collateral, _ => new ConditionalWeakTable<PckChain, Outcome>());
        var outcome = byChain.GetValue(chain, c => Compute(c, collateral));
        foreach (var failure in outcome.Failures)
        {
            log.Fail(failure.Check, failure.Reason);
        }
    }

    private sealed record Outcome(IReadOnlyList<CheckFailure> Failures);

    private static Outcome Compute(PckChain chain, VerifiedCollateral collateral)
    {
        var log = new CheckLog();
        if (collateral.PckCrl is { } pckCrl && chain.Intermediate is { } ca && chain.Leaf is { } leaf)
        {
            if (!pckCrl.VerifySignature(ca))
            {
                log.Fail(CollateralVerifier.PckCrlCheck, $"the PCK CRL (issuer {pckCrl.Issuer.Name}) is not signed by this quote's PCK CA ({ca.Subject})");
            }
            else if (pckCrl.IsRevoked(leaf))
            {
                log.Fail(Check, $"the PCK certificate (serial {leaf.SerialNumber}) is revoked by the PCK CRL");
            }
        }

        if (collateral.RootCaCrl is { } rootCrl && chain.Intermediate is { } pckCa && chain.Root is { } root)
        {
            if (!rootCrl.VerifySignature(root.Certificate))
            {
                log.Fail(CollateralVerifier.RootCrlCheck, $"the root CA CRL is not issued by the root this quote's chain ends at ({root.Certificate.Subject})");
            }
            else if (rootCrl.IsRevoked(pckCa))
            {
                log.Fail(Check, $"the PCK CA certificate {pckCa.Subject} (serial {pckCa.SerialNumber}) is revoked by the root CA CRL");
            }
        }

        return new Outcome(log.Failures);
    }
}
