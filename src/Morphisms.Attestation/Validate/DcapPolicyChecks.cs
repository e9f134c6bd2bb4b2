namespace Morphisms.Attestation.Validate;

/// <summary>Stable names of the policy checks <see cref="SgxValidator"/> and <see cref="TdxValidator"/> record.</summary>
public static class DcapPolicyChecks
{
    /// <summary>MRENCLAVE is not one of the expected values.</summary>
    public const string MrEnclave = "sgx.mrenclave";

    /// <summary>MRSIGNER is not the expected value.</summary>
    public const string MrSigner = "sgx.mrsigner";

    /// <summary>ISVPRODID is not the expected value.</summary>
    public const string IsvProdId = "sgx.isvprodid";

    /// <summary>ISVSVN is below the minimum.</summary>
    public const string IsvSvn = "sgx.isvsvn";

    /// <summary>The enclave runs in debug mode and the policy does not allow it.</summary>
    public const string SgxDebug = "sgx.debug";

    /// <summary>The SGX REPORTDATA is not the expected value.</summary>
    public const string SgxReportData = "sgx.report_data";

    /// <summary>MRTD is not one of the expected values.</summary>
    public const string MrTd = "tdx.mrtd";

    /// <summary>MRCONFIGID is not the expected value.</summary>
    public const string MrConfigId = "tdx.mrconfigid";

    /// <summary>MROWNER is not the expected value.</summary>
    public const string MrOwner = "tdx.mrowner";

    /// <summary>MROWNERCONFIG is not the expected value.</summary>
    public const string MrOwnerConfig = "tdx.mrownerconfig";

    /// <summary>The TD runs in debug mode and the policy does not allow it.</summary>
    public const string TdxDebug = "tdx.debug";

    /// <summary>
    /// A TUD bit of TD_ATTRIBUTES other than DEBUG is set (bits 7:1: the host profiles the TD, or a debug mode this code does
    /// not know): the TDX module deems such a TD untrusted, and no policy accepts it.
    /// </summary>
    public const string TdxUnderDebug = "tdx.td_under_debug";

    /// <summary>The TD is migratable (TD_ATTRIBUTES.MIGRATABLE) and the policy does not allow it.</summary>
    public const string TdxMigratable = "tdx.migratable";

    /// <summary>The TDX REPORTDATA is not the expected value.</summary>
    public const string TdxReportData = "tdx.report_data";

    /// <summary>The TCB status is unknown or not one the policy accepts.</summary>
    public const string TcbStatus = "tcb.status";

    /// <summary>An advisory applies that the policy does not accept.</summary>
    public const string TcbAdvisory = "tcb.advisory";

    /// <summary>The collateral's tcbEvaluationDataNumber is unknown or below the policy's minimum.</summary>
    public const string TcbEvaluationDataNumber = "tcb.evaluation_data_number";

    /// <summary>The check name for RTMR<paramref name="index"/> (0–3) not matching: <c>tdx.rtmr0</c> … <c>tdx.rtmr3</c>.</summary>
    public static string Rtmr(int index) => $"tdx.rtmr{index}";
}
