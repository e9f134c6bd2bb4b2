using System.Text.Json.Nodes;
using Morphisms.Agent.Evidence;
using Morphisms.Agent.Identity;
using Morphisms.Agent.Kms;
using Morphisms.Agent.Telemetry;

namespace Morphisms.Agent.Lifecycle;

/// <summary>One attest-login: challenge, fresh key and CSR, evidence binding both, login.</summary>
public sealed class Attestor(KmsClient kms, IEvidenceProvider evidence, string function, TimeProvider time)
{
    /// <summary>Attests; phases are timed into <paramref name="report"/> when given. A refusal throws an <see cref="AgentException"/>.</summary>
    public async Task<Attestation> AttestAsync(ColdStartReport? report, CancellationToken ct)
    {
        report ??= new ColdStartReport(time);
        var identity = report.Time("keygen", () => new InstanceIdentity(function));
        try
        {
            // A login is never sent twice (KmsClient.LoginAsync): a transient failure of it starts the round again, with
            // a new challenge and evidence bound to the new nonce, within the KMS client's retry budget.
            var (login, tee) = await kms.RetryAsync("auth/attest/login", () => LoginRoundAsync(identity, report, ct), ct).ConfigureAwait(false);

            ServingCertificate certificate;
            try
            {
                certificate = report.Time("certificate", () => identity.Certificate(login, time));
            }
            catch (System.Security.Cryptography.CryptographicException e)
            {
                throw Malformed("login's certificate", e);
            }

            return new Attestation(identity, login, certificate, tee.Tee, tee.Simulated, time.GetUtcNow());
        }
        catch
        {
            identity.Dispose();
            throw;
        }
    }

    // One challenge, evidence bound to its nonce and this key, one login. A transient failure of the login (5xx, 429, a
    // dropped connection, a timeout) propagates for the caller to retry the round; a refusal or a malformed answer does not.
    private async Task<(LoginResult Login, TeeEvidence Tee)> LoginRoundAsync(InstanceIdentity identity, ColdStartReport report, CancellationToken ct)
    {
        // At a cold start this round trip also carries the agent's first TLS handshake with the KMS.
        byte[] nonce;
        try
        {
            nonce = await report.TimeAsync("challenge", () => kms.ChallengeAsync(function, ct)).ConfigureAwait(false);
        }
        catch (KmsCallException e) when (e.Status is 400 or 403 or 404)
        {
            // A verdict like a refused login: 404 is a function the KMS does not know (never registered, or deleted
            // while this instance ran), which no retry will change. At a cold start it exits 3; while running it
            // deprovisions, as a refused login does.
            throw Refused(e);
        }
        catch (InvalidDataException e)
        {
            throw Malformed("challenge", e);
        }

        TeeEvidence tee;
        try
        {
            tee = await report.TimeAsync("evidence", () => evidence.GetEvidenceAsync(identity.ReportData(nonce), ct)).ConfigureAwait(false);
        }
        catch (Exception e) when (e is EvidenceException or IOException or UnauthorizedAccessException)
        {
            throw new AgentException(AgentExitCodes.Evidence, $"no evidence from {evidence.Name}: {e.Message}", e);
        }

        var request = new JsonObject
        {
            ["function"] = function,
            ["tee"] = tee.Tee,
            ["evidence"] = Convert.ToBase64String(tee.Evidence),
            ["nonce"] = Convert.ToBase64String(nonce),
            ["csr"] = identity.CsrPem,
        };
        if (tee.Endorsements is { } endorsements)
        {
            request["endorsements"] = Convert.ToBase64String(endorsements);
        }

        try
        {
            return (await report.TimeAsync("login", () => kms.LoginAsync(request, ct)).ConfigureAwait(false), tee);
        }
        catch (KmsCallException e) when (e.Status is 400 or 403 or 404)
        {
            throw Refused(e);
        }
        catch (InvalidDataException e)
        {
            throw Malformed("login", e);
        }
    }

    private AgentException Refused(KmsCallException e) =>
        new(AgentExitCodes.AttestationRefused, $"the KMS refused attestation of '{function}' ({e.Status}): {e.Errors}", e);

    // The pinned KMS sent something the agent cannot use: not a refusal of this instance, so the maintainer retries it
    // like an outage, and a cold start exits as if the KMS were unreachable.
    private static AgentException Malformed(string what, Exception e) =>
        new(AgentExitCodes.KmsUnavailable, $"the KMS answered the {what} with a malformed response: {e.Message}", e);
}

/// <summary>The outcome of one attestation.</summary>
/// <param name="Identity">The TEE key it bound.</param>
/// <param name="Login">Token and certificate.</param>
/// <param name="Certificate">What the TLS terminator serves.</param>
/// <param name="Tee">The evidence type.</param>
/// <param name="Simulated">Whether the evidence was simulated.</param>
/// <param name="At">When it happened.</param>
public sealed record Attestation(InstanceIdentity Identity, LoginResult Login, ServingCertificate Certificate, string Tee, bool Simulated, DateTimeOffset At);
