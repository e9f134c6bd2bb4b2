namespace Morphisms.Kms.Functions;

/// <summary>
/// Whether an <c>snp</c> reference checks the platform's firmware and microcode. Without <c>minimum_tcb</c> the SNP
/// validator checks no TCB version, so a platform still running firmware with a published vulnerability is accepted;
/// SGX and TDX default to UpToDate, but SNP has no safe default to fill in (its SPL values differ by CPU generation).
/// So a write that registers or proposes new <c>snp</c> values must set <c>minimum_tcb</c> or say
/// <c>allow_any_tcb: true</c>, which is stored with the revision, audited and warned about at every login. Values the
/// registry already holds without either (stored before this rule) keep working, warned about as before, and a write
/// that only re-sends them is not a new registration.
/// </summary>
internal static class SnpTcbFloor
{
    /// <summary>The opt-out's field name, inside <c>snp</c>.</summary>
    public const string OptOut = "allow_any_tcb";

    /// <summary>Whether <paramref name="values"/> accept SEV-SNP evidence from any TCB (opted out or stored before the rule).</summary>
    public static bool Unchecked(ReferenceValues? values) => values?.Snp is { MinimumTcb: null };

    /// <summary>Whether <paramref name="values"/> rely on the explicit opt-out.</summary>
    public static bool OptedOut(ReferenceValues? values) => values?.Snp is { MinimumTcb: null, AllowAnyTcb: true };

    /// <summary>The 400 a write gets that registers or proposes <paramref name="values"/> anew; null when they set a floor (not all zeros) or opt out.</summary>
    public static Http.KmsException? Check(ReferenceValues? values) => values?.Snp switch
    {
        { MinimumTcb: null, AllowAnyTcb: false } => Missing(),

        // Every platform meets an all-zero floor, so it would be the opt-out without the opt-out's audit and warnings.
        { MinimumTcb: { Bootloader: 0, Tee: 0, Snp: 0, Microcode: 0, Fmc: null or 0 } } => Http.KmsException.BadRequest(
            "parameter 'snp.minimum_tcb' is all zeros, which every platform meets, so it checks no firmware or microcode version: "
            + $"set the SPLs of the patched firmware, or set snp.{OptOut} to true (without minimum_tcb) to accept any TCB on purpose"),
        _ => null,
    };

    private static Http.KmsException Missing() =>
        Http.KmsException.BadRequest(
            "parameter 'snp.minimum_tcb' is missing: without it SEV-SNP evidence from any firmware and microcode version is accepted, "
            + "including firmware with published vulnerabilities. Set snp.minimum_tcb to the SPLs of the patched firmware "
            + "({\"bootloader\":N,\"tee\":N,\"snp\":N,\"microcode\":N}, fmc too on Turin; with morph: --snp-minimum-tcb bootloader=N,tee=N,snp=N,microcode=N), "
            + $"or set snp.{OptOut} to true to accept any TCB on purpose (stored, audited and warned about at every login; with morph: --snp-minimum-tcb any)");

    /// <summary>The <c>warnings</c> entry of a write whose <c>snp</c> values check no TCB.</summary>
    public static string Warning(string function) =>
        $"function {function}: snp.minimum_tcb is not set, so SEV-SNP evidence from any firmware and microcode version is accepted";
}
