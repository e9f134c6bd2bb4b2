using Morphisms.Attestation.Collateral;

namespace Morphisms.Attestation.Verify.Dcap;

/// <summary>
/// Intel's TCB-level algorithm, as its SGX/TDX quote verification library (QVL) implements it:
/// match the PCK certificate's TCB (and, for TDX, TEE_TCB_SVN) against the TCB info levels, check the
/// TDX module identity and the quoting enclave identity, and converge the three statuses into one.
/// Only "cannot evaluate" outcomes and Revoked are failures here; whether OutOfDate or
/// SWHardeningNeeded is acceptable is a policy decision made later.
/// </summary>
public static class TcbEvaluator
{
    /// <summary>Check name for "no matching TCB level" and Revoked.</summary>
    public const string TcbStatusCheck = "dcap.tcb_status";

    /// <summary>Check name for TCB info that does not belong to the platform (TEE, FMSPC, PCEID).</summary>
    public const string TcbInfoMatchCheck = "dcap.tcb_info";

    /// <summary>Check name for TDX module identity mismatches.</summary>
    public const string TdxModuleCheck = "dcap.tdx_module";

    /// <summary>Check name for quoting enclave identity mismatches.</summary>
    public const string QeIdentityCheck = "dcap.qe_identity";

    /// <summary>Evaluates the platform, TDX module and QE TCB against verified collateral.</summary>
    /// <param name="collateral">Collateral that passed <see cref="CollateralVerifier"/> (its null items are skipped; their absence was already reported).</param>
    /// <param name="platform">TCB values from the PCK certificate.</param>
    /// <param name="tdx">TDX values from the TD report; null for an SGX quote.</param>
    /// <param name="qe">The quoting enclave's report identity.</param>
    /// <param name="log">Receives the failures.</param>
    /// <returns>The statuses; <see cref="TcbEvaluation.Status"/> is null when no status could be assigned.</returns>
    public static TcbEvaluation Evaluate(VerifiedCollateral collateral, PlatformTcb platform, TdxTcb? tdx, QeReportIdentity qe, CheckLog log)
    {
        ArgumentNullException.ThrowIfNull(collateral);
        ArgumentNullException.ThrowIfNull(log);
        ValidateInputs(platform, tdx, qe);
        return EvaluateLevels(collateral, platform, tdx, qe, log) with { TcbEvaluationDataNumber = EvaluationDataNumber(collateral) };
    }

    private static int? EvaluationDataNumber(VerifiedCollateral collateral) =>
        (collateral.TcbInfo?.TcbEvaluationDataNumber, collateral.QeIdentity?.TcbEvaluationDataNumber) switch
        {
            ({ } tcb, { } qe) => Math.Min(tcb, qe),
            (var tcb, var qe) => tcb ?? qe,
        };

    private static TcbEvaluation EvaluateLevels(VerifiedCollateral collateral, PlatformTcb platform, TdxTcb? tdx, QeReportIdentity qe, CheckLog log)
    {
        var isTdx = tdx is not null;

        var qeResult = EvaluateQe(collateral.QeIdentity, qe, isTdx, log);
        var tcbInfo = collateral.TcbInfo;
        if (tcbInfo is null)
        {
            log.Fail(TcbStatusCheck, "TCB status not computed: no verified TCB info");
            return new TcbEvaluation { QeStatus = qeResult.Level?.Status, AdvisoryIds = qeResult.Level?.AdvisoryIds ?? [] };
        }

        if (!MatchesPlatform(tcbInfo, platform, isTdx, log))
        {
            return new TcbEvaluation { QeStatus = qeResult.Level?.Status, AdvisoryIds = qeResult.Level?.AdvisoryIds ?? [] };
        }

        var module = isTdx ? EvaluateModuleIdentity(tcbInfo, tdx!, log) : new ModuleResult(null, false);
        var terminal = qeResult.Terminal || module.Mismatch;

        var levels = IntelOrder(tcbInfo.TcbLevels, isTdx);
        TcbLevel? sgxLevel = null;
        TcbLevel? tdxLevel = null;
        foreach (var level in levels)
        {
            if (!SgxHigherOrEqual(platform, level))
            {
                continue;
            }

            sgxLevel ??= level;
            if (!isTdx || TdxHigherOrEqual(tdx!.TeeTcbSvn, level))
            {
                tdxLevel = level;
                break;
            }
        }

        var platformLevel = isTdx ? tdxLevel : sgxLevel;
        if (sgxLevel is null || platformLevel is null)
        {
            log.Fail(TcbStatusCheck, $"no matching TCB level found for FMSPC {tcbInfo.FmspcHex}: PCK SGX TCB components "
                + $"{Hex.Of(platform.SgxTcbComponents)}, PCESVN {platform.PceSvn}"
                + (isTdx ? $", TEE_TCB_SVN {Hex.Of(tdx!.TeeTcbSvn)}" : "")
                + (sgxLevel is not null ? " (the SGX part matches, the TDX part is below every level)" : ""));
            return Result(null, null, module, qeResult);
        }

        if (!TcbStatus.PlatformLevelStatuses.Contains(sgxLevel.Status) || !TcbStatus.PlatformLevelStatuses.Contains(platformLevel.Status))
        {
            log.Fail(TcbStatusCheck, $"TCB info level has an unrecognized status '{platformLevel.Status}'");
            return Result(null, platformLevel, module, qeResult);
        }

        string status;
        if (!isTdx)
        {
            status = qeResult.Status is { } q ? ConvergeWithQe(sgxLevel.Status, q) : sgxLevel.Status;
        }
        else
        {
            var moduleLevel = module.Mismatch ? null : MatchModuleLevel(module.Identity, tdx!.TeeTcbSvn, log);
            if (!module.Mismatch && module.Identity is not null && moduleLevel is null)
            {
                terminal = true;
            }

            module = module with { Level = moduleLevel };
            var moduleStatus = moduleLevel?.Status ?? TcbStatus.UpToDate;
            var tdxStatus = ConvergeWithModule(platformLevel.Status, moduleStatus);
            if (tdxStatus != TcbStatus.Revoked)
            {
                if (tdx!.TeeTcbSvn2 is { } svn2)
                {
                    var relaunch = CheckForRelaunch(svn2, levels, tcbInfo, sgxLevel.Status, tdxStatus, moduleStatus, qeResult.Status, log);
                    terminal |= relaunch is null;
                    tdxStatus = relaunch ?? tdxStatus;
                }

                tdxStatus = qeResult.Status is { } q ? ConvergeWithQe(tdxStatus, q) : tdxStatus;
            }

            status = tdxStatus;
        }

        if (status == TcbStatus.Revoked)
        {
            log.Fail(TcbStatusCheck, $"TCB status is Revoked (platform {platformLevel.Status}"
                + (module.Level is { } m ? $", TDX module {m.Status}" : "")
                + (qeResult.Level is { } l ? $", QE {l.Status}" : "") + ")");
        }

        return Result(terminal ? null : status, platformLevel, module, qeResult);
    }

    private static TcbEvaluation Result(string? status, TcbLevel? platformLevel, ModuleResult module, QeResult qe) => new()
    {
        Status = status,
        PlatformStatus = platformLevel?.Status,
        TdxModuleStatus = module.Level?.Status,
        TdxModuleIdentityId = module.Identity?.Id,
        QeStatus = qe.Level?.Status,
        TcbDate = platformLevel?.TcbDate,
        AdvisoryIds = [.. (platformLevel?.AdvisoryIds ?? []).Concat(module.Level?.AdvisoryIds ?? []).Concat(qe.Level?.AdvisoryIds ?? []).Distinct(StringComparer.Ordinal)],
    };

    private static void ValidateInputs(PlatformTcb platform, TdxTcb? tdx, QeReportIdentity qe)
    {
        ArgumentNullException.ThrowIfNull(platform);
        ArgumentNullException.ThrowIfNull(qe);
        if (platform.Fmspc.Length != 6 || platform.PceId.Length != 2 || platform.SgxTcbComponents.Length != 16)
        {
            throw new ArgumentException("platform TCB needs a 6-byte FMSPC, a 2-byte PCEID and 16 SGX TCB components", nameof(platform));
        }

        if (qe.MrSigner.Length != 32 || qe.Attributes.Length != 16)
        {
            throw new ArgumentException("QE identity needs a 32-byte MRSIGNER and 16-byte ATTRIBUTES", nameof(qe));
        }

        if (tdx is not null && (tdx.TeeTcbSvn.Length != 16 || tdx.MrSignerSeam.Length != 48 || tdx.SeamAttributes.Length != 8
            || tdx.TeeTcbSvn2 is { Length: not 16 }))
        {
            throw new ArgumentException("TDX TCB needs a 16-byte TEE_TCB_SVN(2), 48-byte MRSIGNERSEAM and 8-byte SEAMATTRIBUTES", nameof(tdx));
        }
    }

    /// <summary>Intel QVL 4.1.2.4.9–10: the TCB info must be for this TEE, FMSPC and PCE.</summary>
    private static bool MatchesPlatform(TcbInfo tcbInfo, PlatformTcb platform, bool isTdx, CheckLog log)
    {
        var quoteTee = isTdx ? TeeType.Tdx : TeeType.Sgx;
        if (tcbInfo.Tee != quoteTee)
        {
            log.Fail(TcbInfoMatchCheck, $"TCB info is for {tcbInfo.Tee.ToWireName()}, but the quote is {quoteTee.ToWireName()}");
            return false;
        }

        var ok = log.Require(tcbInfo.Fmspc.AsSpan().SequenceEqual(platform.Fmspc), TcbInfoMatchCheck,
            $"TCB info is for FMSPC {tcbInfo.FmspcHex}, but the PCK certificate says {Hex.Of(platform.Fmspc)}");
        ok &= log.Require(tcbInfo.PceId.AsSpan().SequenceEqual(platform.PceId), TcbInfoMatchCheck,
            $"TCB info is for PCEID {Hex.Of(tcbInfo.PceId)}, but the PCK certificate says {Hex.Of(platform.PceId)}");
        return ok;
    }

    /// <summary>
    /// Intel QVL 4.1.2.4.11: MRSIGNERSEAM and SEAMATTRIBUTES against <c>tdxModule</c>, or against the
    /// <c>TDX_NN</c> module identity when the module's major version (TEE_TCB_SVN[1]) is not 0.
    /// </summary>
    private static ModuleResult EvaluateModuleIdentity(TcbInfo tcbInfo, TdxTcb tdx, CheckLog log)
    {
        var major = tdx.TeeTcbSvn[1];
        var expected = tcbInfo.TdxModule!;
        TdxModuleIdentity? identity = null;
        if (major > 0)
        {
            var id = ModuleIdentityId(major);
            if (tcbInfo.TdxModuleIdentities.Count == 0)
            {
                log.Fail(TdxModuleCheck, $"TDX module major version is {major}, but the TCB info has no tdxModuleIdentities");
                return new ModuleResult(null, true);
            }

            identity = FindModuleIdentity(tcbInfo, major);
            if (identity is null)
            {
                log.Fail(TdxModuleCheck, $"TCB info has no TDX module identity {id} (has {string.Join(", ", tcbInfo.TdxModuleIdentities.Select(m => m.Id))})");
                return new ModuleResult(null, true);
            }

            expected = identity;
        }

        var ok = log.Require(tdx.MrSignerSeam.AsSpan().SequenceEqual(expected.MrSigner), TdxModuleCheck,
            $"MRSIGNERSEAM {Hex.Of(tdx.MrSignerSeam)} does not match the TCB info's {Hex.Of(expected.MrSigner)}");

        // Intel's QVL does not mask here: TDX 1.x defines no SEAM attribute, so both must be zero.
        ok &= log.Require(tdx.SeamAttributes.All(b => b == 0) && tdx.SeamAttributes.AsSpan().SequenceEqual(expected.Attributes), TdxModuleCheck,
            $"SEAMATTRIBUTES {Hex.Of(tdx.SeamAttributes)} must be zero and equal the TCB info's {Hex.Of(expected.Attributes)}");
        return new ModuleResult(identity, !ok);
    }

    private static EnclaveTcbLevel? MatchModuleLevel(TdxModuleIdentity? identity, byte[] teeTcbSvn, CheckLog log)
    {
        if (identity is null)
        {
            return null; // major version 0: the module's SVN is part of the TDX TCB components instead
        }

        var level = identity.TcbLevels.FirstOrDefault(l => teeTcbSvn[0] >= l.IsvSvn);
        if (level is null)
        {
            log.Fail(TdxModuleCheck, $"no TCB level of TDX module identity {identity.Id} covers module SVN {teeTcbSvn[0]}");
        }
        else if (!TcbStatus.IdentityLevelStatuses.Contains(level.Status))
        {
            log.Fail(TdxModuleCheck, $"TDX module identity {identity.Id} level has an unrecognized status '{level.Status}'");
            return null;
        }

        return level;
    }

    /// <summary>Intel QVL 4.1.2.4.14–15 and 4.1.2.9.5–10: the QE report against the QE identity.</summary>
    private static QeResult EvaluateQe(EnclaveIdentity? identity, QeReportIdentity qe, bool isTdx, CheckLog log)
    {
        if (identity is null)
        {
            return new QeResult(null, null, false);
        }

        var expectedId = isTdx ? "TD_QE" : "QE";
        if (identity.Id != expectedId)
        {
            log.Fail(QeIdentityCheck, $"enclave identity is for {identity.Id}, but a {(isTdx ? "TDX" : "SGX")} quote is signed by the {expectedId}");
            return new QeResult(null, null, true);
        }

        var ok = log.Require((qe.MiscSelect & identity.MiscSelectMask) == identity.MiscSelect, QeIdentityCheck,
            $"QE MISCSELECT {qe.MiscSelect:x8} masked with {identity.MiscSelectMask:x8} is not {identity.MiscSelect:x8}");
        var masked = qe.Attributes.Zip(identity.AttributesMask, (a, m) => (byte)(a & m)).ToArray();
        ok &= log.Require(masked.AsSpan().SequenceEqual(identity.Attributes), QeIdentityCheck,
            $"QE ATTRIBUTES {Hex.Of(qe.Attributes)} masked with {Hex.Of(identity.AttributesMask)} are not {Hex.Of(identity.Attributes)}");
        ok &= log.Require(qe.MrSigner.AsSpan().SequenceEqual(identity.MrSigner), QeIdentityCheck,
            $"QE MRSIGNER {Hex.Of(qe.MrSigner)} is not Intel's {Hex.Of(identity.MrSigner)}");
        ok &= log.Require(qe.IsvProdId == identity.IsvProdId, QeIdentityCheck,
            $"QE ISVPRODID {qe.IsvProdId} is not {identity.IsvProdId}");
        if (!ok)
        {
            return new QeResult(null, null, true);
        }

        var level = identity.TcbLevels.FirstOrDefault(l => qe.IsvSvn >= l.IsvSvn);
        if (level is null)
        {
            log.Fail(QeIdentityCheck, $"no {identity.Id} identity TCB level covers QE ISVSVN {qe.IsvSvn}");
            return new QeResult(null, null, true);
        }

        return new QeResult(level.Status, level, false);
    }

    /// <summary>
    /// Intel QVL's TcbLevel ordering (a std::set ordered by operator&gt;): by SGX components
    /// lexicographically, then — for TDX levels with equal PCESVN — by TDX components, else by PCESVN;
    /// highest first. Intel's files are already in this order; sorting keeps the result Intel's even if not.
    /// </summary>
    private static List<TcbLevel> IntelOrder(IReadOnlyList<TcbLevel> levels, bool isTdx) =>
        [.. levels.OrderByDescending(l => l, Comparer<TcbLevel>.Create((a, b) =>
        {
            var sgx = a.SgxTcbComponents.AsSpan().SequenceCompareTo(b.SgxTcbComponents);
            if (sgx != 0)
            {
                return sgx;
            }

            if (isTdx && a.PceSvn == b.PceSvn && a.TdxTcbComponents is not null && b.TdxTcbComponents is not null)
            {
                return a.TdxTcbComponents.AsSpan().SequenceCompareTo(b.TdxTcbComponents);
            }

            return a.PceSvn.CompareTo(b.PceSvn);
        }))];

    private static bool SgxHigherOrEqual(PlatformTcb platform, TcbLevel level)
    {
        for (var i = 0; i < 16; i++)
        {
            if (platform.SgxTcbComponents[i] < level.SgxTcbComponents[i])
            {
                return false;
            }
        }

        return platform.PceSvn >= level.PceSvn;
    }

    /// <summary>
    /// When the module's major version (TEE_TCB_SVN[1]) is not 0, Intel's QVL skips bytes 0 and 1:
    /// the module's SVN is then judged by its own module identity levels, not by the platform levels.
    /// </summary>
    private static bool TdxHigherOrEqual(byte[] teeTcbSvn, TcbLevel level)
    {
        var components = level.TdxTcbComponents!;
        for (var i = teeTcbSvn[1] > 0 ? 2 : 0; i < 16; i++)
        {
            if (teeTcbSvn[i] < components[i])
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Intel QVL <c>convergeTcbStatusWithQeTcbStatus</c>.</summary>
    private static string ConvergeWithQe(string tcbStatus, string qeStatus)
    {
        // Intel maps any QE level status other than UpToDate and Revoked to "ISVSVN out of date".
        if (qeStatus is not (TcbStatus.UpToDate or TcbStatus.Revoked))
        {
            if (tcbStatus is TcbStatus.UpToDate or TcbStatus.SWHardeningNeeded)
            {
                return TcbStatus.OutOfDate;
            }

            if (tcbStatus is TcbStatus.ConfigurationNeeded or TcbStatus.ConfigurationAndSWHardeningNeeded)
            {
                return TcbStatus.OutOfDateConfigurationNeeded;
            }
        }

        return qeStatus == TcbStatus.Revoked ? TcbStatus.Revoked : tcbStatus;
    }

    /// <summary>Intel QVL <c>convergeTcbStatusWithTdxModuleStatus</c>.</summary>
    private static string ConvergeWithModule(string tcbStatus, string moduleStatus)
    {
        if (moduleStatus == TcbStatus.OutOfDate)
        {
            if (tcbStatus is TcbStatus.UpToDate or TcbStatus.SWHardeningNeeded)
            {
                return TcbStatus.OutOfDate;
            }

            if (tcbStatus is TcbStatus.ConfigurationNeeded or TcbStatus.ConfigurationAndSWHardeningNeeded)
            {
                return TcbStatus.OutOfDateConfigurationNeeded;
            }
        }

        return moduleStatus == TcbStatus.Revoked ? TcbStatus.Revoked : tcbStatus;
    }

    /// <summary>
    /// Intel QVL <c>checkForRelaunch</c> (TD report 1.5): a TD whose platform and module are out of date
    /// only because it was launched before an update — TEE_TCB_SVN2 shows the updated module — is told to
    /// relaunch rather than marked out of date. Returns null when the check cannot be completed (logged).
    /// </summary>
    private static string? CheckForRelaunch(byte[] svn2, List<TcbLevel> levels, TcbInfo tcbInfo, string sgxStatus,
        string tdxStatus, string moduleStatus, string? qeStatus, CheckLog log)
    {
        if ((qeStatus is not null && qeStatus != TcbStatus.UpToDate)
            || sgxStatus is not (TcbStatus.UpToDate or TcbStatus.SWHardeningNeeded or TcbStatus.ConfigurationNeeded or TcbStatus.ConfigurationAndSWHardeningNeeded)
            || tdxStatus is not (TcbStatus.OutOfDate or TcbStatus.OutOfDateConfigurationNeeded)
            || moduleStatus != TcbStatus.OutOfDate)
        {
            return tdxStatus;
        }

        var latest = levels[0].TdxTcbComponents!;
        int requiredModuleSvn = latest[0];
        if (svn2[1] != 0)
        {
            var identity = FindModuleIdentity(tcbInfo, svn2[1]);
            if (identity is null)
            {
                log.Fail(TdxModuleCheck, $"TCB info has no TDX module identity {ModuleIdentityId(svn2[1])} for TEE_TCB_SVN2");
                return null;
            }

            if (identity.TcbLevels.Count == 0)
            {
                log.Fail(TdxModuleCheck, $"TDX module identity {identity.Id} has no TCB levels");
                return null;
            }

            requiredModuleSvn = identity.TcbLevels[0].IsvSvn;
        }

        if (svn2[0] >= requiredModuleSvn && svn2[2] >= latest[2])
        {
            return IsConfigurationNeeded(sgxStatus) || IsConfigurationNeeded(tdxStatus)
                ? TcbStatus.TDRelaunchAdvisedConfigurationNeeded
                : TcbStatus.TDRelaunchAdvised;
        }

        return tdxStatus;
    }

    private static bool IsConfigurationNeeded(string status) =>
        status is TcbStatus.ConfigurationNeeded or TcbStatus.OutOfDateConfigurationNeeded
            or TcbStatus.ConfigurationAndSWHardeningNeeded or TcbStatus.TDRelaunchAdvisedConfigurationNeeded;

    /// <summary>Intel formats the major version as two uppercase hex digits ("TDX_" + bytesToHexString).</summary>
    private static string ModuleIdentityId(byte major) => $"TDX_{major:X2}";

    private static TdxModuleIdentity? FindModuleIdentity(TcbInfo tcbInfo, byte major) =>
        tcbInfo.TdxModuleIdentities.FirstOrDefault(m => string.Equals(m.Id, ModuleIdentityId(major), StringComparison.OrdinalIgnoreCase));

    private sealed record QeResult(string? Status, EnclaveTcbLevel? Level, bool Terminal);

    private sealed record ModuleResult(TdxModuleIdentity? Identity, bool Mismatch)
    {
        public EnclaveTcbLevel? Level { get; init; }
    }
}
