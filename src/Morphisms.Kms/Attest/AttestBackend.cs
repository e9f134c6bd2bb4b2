using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json.Nodes;
using Microsoft.Extensions.Logging;
using Morphisms.Attestation;
using Morphisms.Kms.Barrier;
using Morphisms.Kms.Functions;
using Morphisms.Kms.Http;
using Morphisms.Kms.Metrics;
using Morphisms.Kms.Tokens;

namespace Morphisms.Kms.Attest;

/// <summary>
/// The attestation auth method at <c>auth/attest/</c> (DESIGN.md §3): <c>challenge</c> hands out a single-use
/// nonce, <c>login</c> exchanges evidence that binds that nonce and a TEE-generated key for a token carrying only
/// the function's policies. Both are unauthenticated: the evidence is the credential.
/// </summary>
internal sealed partial class AttestBackend : ILogicalBackend
{
    /// <summary>The path that creates an instance's token: a token's <c>path</c> says it came from an attested login.</summary>
    public const string LoginPath = "auth/attest/login";

    /// <summary>The token metadata naming the function the instance attested as.</summary>
    public const string FunctionMetadataKey = "function";

    /// <summary>The token metadata naming the revision whose reference values the instance matched.</summary>
    public const string RevisionMetadataKey = "revision";

    private readonly KmsMetrics _metrics;
    private readonly ChallengeStore _challenges;
    private readonly LoginAppraiser _appraiser;
    private readonly IFunctionCertificateIssuer _issuer;
    private readonly Updates.FunctionRetirement _retirement;
    private readonly ILogger<AttestBackend> _logger;

    public AttestBackend(
        KmsMetrics metrics, ChallengeStore challenges, LoginAppraiser appraiser, IFunctionCertificateIssuer issuer, Updates.FunctionRetirement retirement, ILogger<AttestBackend> logger)
    {
        _logger = logger;
        _metrics = metrics;
        _challenges = challenges;
        _appraiser = appraiser;
        _issuer = issuer;
        _retirement = retirement;
        Routes.Add(new Route("auth/attest/challenge", "challenge") { Unauthenticated = true }, (Operation.Update, ChallengeAsync));
        Routes.Add(new Route("auth/attest/login", "login") { Unauthenticated = true }, (Operation.Update, LoginAsync));
    }

    /// <inheritdoc />
    public string Type => "attest";

    /// <inheritdoc />
    public RouteTable Routes { get; } = new();

    private async Task<KmsResponse?> ChallengeAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        var name = request.Fields.RequiredString("function");
        try
        {
            FunctionRegistry.ValidName(name);
        }
        catch (KmsException)
        {
            throw KmsException.BadRequest("invalid value for parameter 'function': expected a function name (1-63 lowercase letters, digits and '-')");
        }

        // 404 rather than a nonce: the agent learns at once that nothing will accept it. Function names are not secret (they are DNS names in certificates), so this reveals nothing.
        if (await request.RequireState().Functions.GetAsync(name, ct).ConfigureAwait(false) is null)
        {
            _metrics.ObserveChallenge("refused");
            throw new KmsException(404, $"function {name} is not registered");
        }

        // Nothing is held per challenge (ChallengeStore), so there is nothing to cap here.
        var issued = _challenges.Issue(name);
        _metrics.ObserveChallenge("issued");
        return KmsResponse.WithData(new JsonObject
        {
            ["function"] = name,
            ["nonce"] = Convert.ToBase64String(issued.Nonce),
            ["expires_at"] = Timestamps.Rfc3339(issued.ExpiresAt),
        });
    }

    private async Task<KmsResponse?> LoginAsync(KmsRequest request, RouteMatch match, CancellationToken ct)
    {
        LoginRequest login;
        try
        {
            login = LoginRequest.Parse(request.Fields);
        }
        catch (KmsException)
        {
            _metrics.ObserveLogin(LoginRequest.TeeLabel(request.Fields), "invalid");
            throw;
        }

        var tee = login.Tee.ToWireName();
        try
        {
            var response = await AuthenticateAsync(request, login, ct).ConfigureAwait(false);
            _metrics.ObserveLogin(tee, "accepted");
            return response;
        }
        catch (KmsException e) when (e.StatusCode == 403)
        {
            _metrics.ObserveLogin(tee, "refused");
            request.RequireState().Audit?.Event("attest-login", request, new JsonObject
            {
                ["outcome"] = "refused",
                ["function"] = login.Function,
                ["tee"] = tee,
                ["reason"] = e.Message,
                ["evidence_sha256"] = Convert.ToHexStringLower(SHA256.HashData(login.Evidence)),
            });
            throw;
        }
        catch (KmsException e) when (e.StatusCode == 400)
        {
            _metrics.ObserveLogin(tee, "invalid");
            throw;
        }
        catch (KmsException e) when (e.StatusCode == 429)
        {
            _metrics.ObserveLogin(tee, "busy");
            throw;
        }
    }

    private static string NonceRefusal(NonceCheck check) => check switch
    {
        NonceCheck.Expired => "nonce expired",
        NonceCheck.AlreadyUsed => "nonce already used",
        NonceCheck.OtherFunction => "nonce was issued for another function",
        _ => "nonce unknown: not issued by this KMS since its start, or altered",
    };

    private async Task<KmsResponse> AuthenticateAsync(KmsRequest request, LoginRequest login, CancellationToken ct)
    {
        var state = request.RequireState();

        // The nonce is judged first and spent only once the evidence is accepted: a refused attempt, forged evidence
        // included, leaves nothing behind, so refusals cannot fill the spent set (a retry with the same nonce needs
        // genuine evidence bound to it, which is what a new challenge would need too).
        var nonce = _challenges.Check(login.Nonce, login.Function);
        if (nonce != NonceCheck.Valid)
        {
            throw Refused(NonceRefusal(nonce));
        }

        // 403, not 404: login answers every refusal alike (DESIGN.md §3), and a function deleted between challenge
        // and login is a refusal of that login, not a missing resource.
        var function = await state.Functions.GetAsync(login.Function, ct).ConfigureAwait(false)
            ?? throw Refused($"function {login.Function} is not registered");

        var appraisal = await _appraiser.AppraiseAsync(login, function, ct).ConfigureAwait(false);
        var result = appraisal.Result;
        if (!result.Accepted || appraisal.Revision is not { } revision)
        {
            throw Refused(string.Join("; ", result.Failures.Select(f => f.ToString())));
        }

        switch (_challenges.Spend(login.Nonce))
        {
            case NonceCheck.Valid:
                break;
            case NonceCheck.Busy:
                // Not a refusal: the nonce is unspent, so the same request may come again.
                throw new KmsException(429, "too many attestation logins within one challenge lifetime: retry shortly");
            case var spent:
                throw Refused(NonceRefusal(spent)); // a concurrent login with the same nonce won, or it expired meanwhile
        }

        var evidenceHash = SHA256.HashData(login.Evidence);
        var measurement = Hex.Of(result.Claims.Measurement);
        var simulated = result.Simulated ? "true" : "false";
        // Token, certificate and the retirement index entries naming them are committed in one transaction: one
        // fsync per login (shared with concurrent logins by group commit), and no moment at which a credential
        // exists that a retirement's walk of the index could miss. Until the commit, none of them exists.
        var writes = new WriteSet();
        var (token, entry, warnings) = state.Tokens.PrepareOrphan(
            new TokenCreateRequest
            {
                Policies = function.Policies,
                Meta = new Dictionary<string, string>
                {
                    [FunctionMetadataKey] = function.Name,
                    ["tee"] = result.Tee.ToWireName(),
                    ["measurement"] = measurement,
                    ["simulated"] = simulated,
                    [RevisionMetadataKey] = revision.Revision.ToString(CultureInfo.InvariantCulture),
                },
                Ttl = TimeSpan.FromSeconds(function.TokenTtl),
                ExplicitMaxTtl = TimeSpan.FromSeconds(function.TokenMaxTtl),
                Renewable = true,
                DisplayName = "attest-" + function.Name,
                Path = LoginPath,
                InternalData = new JsonObject
                {
                    ["evidence_sha256"] = Convert.ToHexStringLower(evidenceHash),
                    ["key_sha256"] = Convert.ToHexStringLower(SHA256.HashData(login.CsrSpki)),
                    ["attestation_status"] = result.Status.ToWireName(),
                },
            },
            writes);
        var certificate = await _issuer.IssueAsync(
            new FunctionCertificateRequest(state, function, revision.Revision, login.Csr, result, evidenceHash), writes, ct).ConfigureAwait(false);
        await _retirement.IndexLoginAsync(state, function.Name, revision.Revision, entry, certificate.Serial, certificate.NotAfter, writes, ct).ConfigureAwait(false);
        await writes.CommitAsync(ct).ConfigureAwait(false);

        // Refuses (revoking both) if the revision was retired while this login ran.
        await _retirement.RefuseIfRetiredAsync(state, function.Name, revision.Revision, ct).ConfigureAwait(false);
        state.Audit?.Event("attest-login", request, new JsonObject
        {
            ["outcome"] = "accepted",
            ["function"] = function.Name,
            ["revision"] = revision.Revision,
            ["tee"] = result.Tee.ToWireName(),

            // Whether the matched revision takes the registrant's word that the launch measurement binds the workload
            // for this TEE (the flag GET shows, which lets HOST_DATA / MRCONFIGID go unset), so such logins can be
            // found. Simulated evidence is appraised against the simulated measurements, which the flag does not concern.
            ["launch_measurement_binds_workload"] = !result.Simulated && WorkloadBinding.ReliedOn(revision.ReferenceValues).Contains(result.Tee.ToWireName()),

            // Likewise whether hardware SNP evidence was accepted with no firmware/microcode floor (snp.allow_any_tcb, or
            // a revision stored before a floor was required), so an auditor can find the logins no TCB check covered.
            ["snp_tcb_unchecked"] = !result.Simulated && result.Tee == TeeType.Snp && SnpTcbFloor.Unchecked(revision.ReferenceValues),
            ["measurement"] = measurement,
            ["simulated"] = result.Simulated,
            ["status"] = result.Status.ToWireName(),
            ["evidence_sha256"] = Convert.ToHexStringLower(evidenceHash),
            ["accessor"] = state.Audit.Keys.Hash(entry.Accessor),
            ["policies"] = JsonValues.Strings(entry.Policies),
        });

        // Without a minimum TCB the SNP validator checks no firmware/microcode version, so a platform with known-bad
        // firmware is accepted too; SGX/TDX default to UpToDate. A registration gets there only by opting out
        // (snp.allow_any_tcb) or by having been stored before a floor was required, which keeps working: either way
        // it is said on every such login (docs/trust-model.md).
        if (!result.Simulated && result.Tee == TeeType.Snp && SnpTcbFloor.Unchecked(revision.ReferenceValues))
        {
            LogSnpWithoutMinimumTcb(_logger, function.Name, revision.Revision);
        }

        var response = new KmsResponse
        {
            Auth = TokenResponses.Auth(token, entry, state.Tokens.RemainingSeconds(entry)),
            Data = new JsonObject
            {
                ["function"] = function.Name,
                ["revision"] = revision.Revision,
                ["attestation"] = Summary(result, evidenceHash),
                ["certificate"] = certificate.Certificate,
                ["ca_chain"] = JsonValues.Strings(certificate.CaChain),

                // Where the agent reads its bundle: the registry's path (for an owned function the one its owners
                // approved), else the default, named too — the agent takes a path from its command line, which the
                // host writes, only when the KMS names none.
                ["secret_path"] = function.EffectiveSecretPath,
            },
        };

        response.Warnings.AddRange(result.Warnings);
        response.Warnings.AddRange(warnings);
        return response;
    }

    private static JsonObject Summary(AttestationResult result, byte[] evidenceHash) => new()
    {
        ["status"] = result.Status.ToWireName(),
        ["tee"] = result.Tee.ToWireName(),
        ["simulated"] = result.Simulated,
        ["measurement"] = Hex.Of(result.Claims.Measurement),
        ["tcb_status"] = result.TcbStatus,
        ["advisory_ids"] = JsonValues.Strings(result.AdvisoryIds),
        ["warnings"] = JsonValues.Strings(result.Warnings),
        ["evidence_sha256"] = Convert.ToHexStringLower(evidenceHash),
    };

    private static KmsException Refused(string reason) => new(403, "attestation refused: " + reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "accepted SEV-SNP login for function {Function} revision {Revision} without snp.minimum_tcb: any firmware and microcode version is accepted")]
    private static partial void LogSnpWithoutMinimumTcb(ILogger logger, string function, int revision);
}
