namespace Morphisms.Agent;

/// <summary>
/// Exit codes of <c>morph-init</c>. Once the instance is ready, the agent exits with the app's own code; the codes
/// below are for failures before that (an app already started, early or released, is stopped first).
/// </summary>
public static class AgentExitCodes
{
    /// <summary>Usage error or unreadable configuration.</summary>
    public const int Usage = 2;

    /// <summary>The KMS refused the attestation (unregistered function or measurement, bad binding, expired nonce, ...).</summary>
    public const int AttestationRefused = 3;

    /// <summary>The KMS could not be reached, or failed the pin check, within the bounded retries.</summary>
    public const int KmsUnavailable = 4;

    /// <summary>The secret bundle could not be read or written.</summary>
    public const int Secrets = 5;

    /// <summary>No TEE evidence could be obtained.</summary>
    public const int Evidence = 6;

    /// <summary>The app did not start or did not answer on its port in time.</summary>
    public const int AppNotReady = 7;

    /// <summary>
    /// No KMS CA pin in the measured launch configuration (SNP HOST_DATA or TDX MRCONFIGID all zeros, no Gramine
    /// manifest constant) and <c>--allow-unmeasured-pin</c> not given. Nothing was sent to any KMS.
    /// </summary>
    public const int NoMeasuredPin = 8;

    /// <summary>The TLS terminator could not listen on <c>--port</c> (taken, or not an address of this machine).</summary>
    public const int ListenFailed = 9;

    /// <summary>
    /// An unexpected error inside the agent (a bug): logged with its type and message; the app is stopped. Also a ready
    /// instance whose app could not be stopped (its kill failed: <c>app_stop_failed</c>), whose exit code is not known.
    /// </summary>
    public const int Internal = 70;
}
