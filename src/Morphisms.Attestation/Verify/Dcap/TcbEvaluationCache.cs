using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Memoises <see cref="TcbEvaluator.Evaluate"/>. The evaluation is a pure function of the verified
/// collateral, the PCK chain (which fixes the platform TCB) and a few quote fields (the QE identity
/// and, for TDX, the TDX TCB), so it is keyed by the first two objects — which come out of their own
/// caches — and a digest of the rest.
/// </summary>
internal static class TcbEvaluationCache
{
    private static readonly ConditionalWeakTable<VerifiedCollateral, ConditionalWeakTable<PckChain, BoundedCache<DigestKey, Outcome>>> Outcomes = new();

    public static TcbEvaluation Evaluate(VerifiedCollateral collateral, PckChain chain, PlatformTcb platform, TdxTcb? tdx, QeReportIdentity qe, CheckLog log)
    {
        var byChain = Outcomes.GetValue(collateral, _ => new ConditionalWeakTable<PckChain, BoundedCache<DigestKey, Outcome>>());
        var byQuote = byChain.GetValue(chain, _ => new BoundedCache<DigestKey, Outcome>(64));
        var key = KeyOf(tdx, qe);
        if (!byQuote.TryGet(key, out var outcome))
        {
            var evaluationLog = new CheckLog();
            var evaluation = TcbEvaluator.Evaluate(collateral, platform, tdx, qe, evaluationLog);
            outcome = new Outcome(evaluation, evaluationLog.Failures);
            byQuote.Set(key, outcome);
        }

        foreach (var failure in outcome.Failures)
        {
            log.Fail(failure.Check, failure.Reason);
        }

        return outcome.Evaluation;
    }

    private sealed record Outcome(TcbEvaluation Evaluation, IReadOnlyList<CheckFailure> Failures);

    private static DigestKey KeyOf(TdxTcb? tdx, QeReportIdentity qe)
    {
        Span<byte> buffer = stackalloc byte[32 + 2 + 2 + 4 + 16 + 1 + 16 + 48 + 8 + 16];
        var span = buffer;
        qe.MrSigner.CopyTo(span);
        BinaryPrimitives.WriteUInt16LittleEndian(span[32..], qe.IsvProdId);
        BinaryPrimitives.WriteUInt16LittleEndian(span[34..], qe.IsvSvn);
        BinaryPrimitives.WriteUInt32LittleEndian(span[36..], qe.MiscSelect);
        qe.Attributes.CopyTo(span[40..]);
        span = span[56..];
        span[0] = (byte)(tdx is null ? 0 : tdx.TeeTcbSvn2 is null ? 1 : 2);
        if (tdx is not null)
        {
            tdx.TeeTcbSvn.CopyTo(span[1..]);
            tdx.MrSignerSeam.CopyTo(span[17..]);
            tdx.SeamAttributes.CopyTo(span[65..]);
            tdx.TeeTcbSvn2?.CopyTo(span[73..]);
        }

        return DigestKey.Of(buffer);
    }
}
