using System.Formats.Asn1;
using System.Text;
using Morphisms.Attestation.Collateral;
using Morphisms.Attestation.Simulated;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>
/// Which DCAP collateral an SGX login is judged with, played as a TCB recovery on the simulated SGX platform: Intel's
/// collateral from before it rates the platform UpToDate (tcbEvaluationDataNumber 17), from after it OutOfDate (18).
/// Both are genuinely signed and both within their validity, so only the KMS's choice tells them apart.
/// </summary>
public class DcapCollateralFreshnessTests
{
    private static readonly DateTimeOffset Now = SimulatedTees.Epoch;

    private static SimulatedTeeAuthority Tee => SimulatedTees.Trusted;

    private static DcapCollateral BeforeRecovery => Tee.CreateSgxCollateral(Now.AddHours(-12), TcbStatus.UpToDate, 17);

    private static DcapCollateral AfterRecovery => Tee.CreateSgxCollateral(Now, TcbStatus.OutOfDate, 18);

    [Fact]
    public async Task A_login_sending_collateral_older_than_the_kmss_own_is_judged_with_the_kmss()
    {
        await using var kms = await StartAsync(own: AfterRecovery);

        var refused = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(403);

        Assert.Contains("tcb.status: TCB status OutOfDate is not accepted", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_login_sending_collateral_newer_than_the_kmss_own_is_judged_with_the_newer()
    {
        // The KMS's directory predates the recovery; the instance brings Intel's newer documents, which it cannot forge.
        await using var kms = await StartAsync(own: BeforeRecovery);

        var refused = (await LoginAsync(kms, endorsements: AfterRecovery)).Expect(403);

        Assert.Contains("tcb.status: TCB status OutOfDate is not accepted", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_login_without_collateral_is_judged_with_the_kmss_own()
    {
        await using var kms = await StartAsync(own: BeforeRecovery);

        var login = (await LoginAsync(kms, endorsements: null)).Expect(200);

        Assert.Equal("UpToDate", login.Data["attestation"]!["tcb_status"]!.GetValue<string>());
    }

    /// <summary>
    /// An own collateral directory that lacks items for a platform (here: only its CRLs) cannot judge the offered ones'
    /// age, so it does not take them: the login is refused, naming what the KMS lacks.
    /// </summary>
    [Fact]
    public async Task Items_the_kmss_own_collateral_lacks_are_a_503_naming_them_not_taken_from_the_login()
    {
        var crlsOnly = AfterRecovery with { TcbInfo = null, QeIdentity = null };
        await using var kms = await StartAsync(own: crlsOnly);

        var unavailable = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(503);

        Assert.StartsWith("the KMS's DCAP collateral source has no tcb_info, qe_identity for this platform (sgx, FMSPC ", unavailable.Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("the instance's collateral is not used in its place", unavailable.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_own_source_with_nothing_for_the_platform_is_a_503_not_the_logins_collateral()
    {
        await using var kms = await StartAsync(own: null, source: new EmptySource());

        var unavailable = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(503);

        Assert.Contains("has no tcb_info, qe_identity, pck_crl, root_ca_crl for this platform", unavailable.Errors.Single(), StringComparison.Ordinal);
    }

    /// <summary>
    /// Whoever sits between the KMS and a PCCS can answer 404 for the PCK CRL: with the instance's CRL (from before its
    /// PCK was revoked) used in its place, a revoked platform would log in.
    /// </summary>
    [Fact]
    public async Task A_404_from_the_kmss_pccs_refuses_the_login_rather_than_take_the_instances_item()
    {
        var pccs = new FakePccs(AfterRecovery) { Missing = "/sgx/certification/v4/pckcrl" };
        await using var kms = await StartAsync(own: null, source: pccs.Source);

        var unavailable = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(503);

        Assert.StartsWith("the KMS's DCAP collateral source has no pck_crl for this platform (sgx, FMSPC ", unavailable.Errors.Single(), StringComparison.Ordinal);
        Assert.Contains($"from {FakePccs.Address}", unavailable.Errors.Single(), StringComparison.Ordinal);
        Assert.Contains("/sgx/certification/v4/pckcrl", pccs.Requested);
    }

    [Fact]
    public async Task A_pccs_answering_every_item_judges_the_login_with_its_collateral()
    {
        // The same fake as above, with nothing missing: what refused the login there was the 404 alone.
        var pccs = new FakePccs(AfterRecovery);
        await using var kms = await StartAsync(own: null, source: pccs.Source);

        var refused = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(403);

        Assert.Contains("tcb.status: TCB status OutOfDate is not accepted", refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Without_collateral_of_its_own_the_kms_takes_the_logins_as_sent_and_warns_at_start_and_per_login()
    {
        var warnings = new StringWriter();
        await using var kms = await StartAsync(own: null, warnings: warnings);

        var login = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(200);

        Assert.Equal("UpToDate", login.Data["attestation"]!["tcb_status"]!.GetValue<string>());
        Assert.Contains("WARNING! the KMS has no DCAP collateral of its own", warnings.ToString(), StringComparison.Ordinal);
        Assert.Contains(
            login.Data["attestation"]!["warnings"]!.AsArray().Select(w => w!.GetValue<string>()),
            w => w.StartsWith("the KMS has no DCAP collateral of its own: the instance's was used as sent", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_kms_with_collateral_of_its_own_does_not_warn_about_it()
    {
        var warnings = new StringWriter();
        await using var kms = await StartAsync(own: AfterRecovery, warnings: warnings);

        Assert.DoesNotContain("DCAP collateral", warnings.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_minimum_tcb_evaluation_data_number_refuses_older_collateral_naming_the_check()
    {
        await using var kms = await StartAsync(own: null, minimumSgx: 18);

        var refused = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(403);

        Assert.Contains(
            "tcb.evaluation_data_number: the collateral's tcbEvaluationDataNumber 17 is below the policy minimum 18",
            refused.Errors.Single(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_minimum_the_collateral_meets_changes_nothing()
    {
        await using var kms = await StartAsync(own: null, minimumSgx: 17, minimumTdx: 99);

        var login = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(200);

        Assert.Equal("UpToDate", login.Data["attestation"]!["tcb_status"]!.GetValue<string>());
    }

    [Fact]
    public async Task A_collateral_source_that_fails_is_a_503_not_a_fallback_to_the_logins_collateral()
    {
        await using var kms = await StartAsync(own: null, source: new FailingSource());

        var unavailable = (await LoginAsync(kms, endorsements: BeforeRecovery)).Expect(503);

        Assert.Contains("DCAP collateral source is unavailable", unavailable.Errors.Single(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A CRL whose issuer is "02 01 00" (an INTEGER, not a Name) parsed, and the verifier's message then rendered the
    /// name as it decoded lazily; it is now a format failure of the CRL, named, and the login a 403 like any bad CRL.
    /// </summary>
    [Fact]
    public async Task A_login_whose_crl_issuer_is_not_a_name_is_refused_naming_the_malformed_crl()
    {
        await using var kms = await StartAsync(own: null);

        var refused = (await LoginAsync(kms, endorsements: BeforeRecovery with { RootCaCrl = CrlWithIssuer([0x02, 0x01, 0x00]) })).Expect(403);

        Assert.Contains("dcap.collateral.root_crl: root CA CRL is malformed: crl: the issuer is not an X.500 name", refused.Errors.Single(), StringComparison.Ordinal);
    }

    /// <summary>
    /// A KMS that trusts the simulated Intel root as a vendor root, not through <c>TrustSimulatedTee</c>: then it makes
    /// no simulated collateral of its own, and what it has is exactly <paramref name="own"/>.
    /// </summary>
    private static async Task<TestKms> StartAsync(
        DcapCollateral? own, TextWriter? warnings = null, int? minimumSgx = null, int? minimumTdx = null, ICollateralSource? source = null)
    {
        var kms = await TestKms.StartUnsealedAsync(o => o with
        {
            WarningWriter = warnings ?? TextWriter.Null,
            Attestation = new KmsAttestationOptions
            {
                VendorAnchors = Tee.TrustedWith(Morphisms.Attestation.Trust.TrustAnchors.Vendor),
                Collateral = source ?? (own is null ? null : new FixedCollateralSource(own)),
                MinimumSgxTcbEvaluationDataNumber = minimumSgx,
                MinimumTdxTcbEvaluationDataNumber = minimumTdx,
            },
        });
        await AttestFlow.RegisterSignerAsync(kms.Client);
        return kms;
    }

    private static async Task<VaultResult> LoginAsync(TestKms kms, DcapCollateral? endorsements)
    {
        using var instance = new FunctionInstance();
        var nonce = await AttestFlow.ChallengeAsync(kms.Client);
        var bundle = endorsements is null ? null : Encoding.UTF8.GetBytes(CollateralBundle.ToJson(endorsements));
        return await AttestFlow.LoginAsync(kms.Client, "sgx", instance.SgxQuote(nonce), nonce, instance.CsrPem, endorsements: bundle);
    }

    /// <summary>An unsigned CRL with <paramref name="issuer"/>, encoded as given, as its issuer.</summary>
    private static byte[] CrlWithIssuer(byte[] issuer)
    {
        var writer = new AsnWriter(AsnEncodingRules.DER);
        using (writer.PushSequence())
        {
            using (writer.PushSequence())
            {
                writer.WriteInteger(1);
                using (writer.PushSequence())
                {
                    writer.WriteObjectIdentifier("1.2.840.10045.4.3.2");
                }

                writer.WriteEncodedValue(issuer);
                writer.WriteUtcTime(Now.AddDays(-1));
                writer.WriteUtcTime(Now.AddDays(29));
            }

            using (writer.PushSequence())
            {
                writer.WriteObjectIdentifier("1.2.840.10045.4.3.2");
            }

            writer.WriteBitString(new byte[8]);
        }

        return writer.Encode();
    }

    private sealed class EmptySource : ICollateralSource
    {
        public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default) =>
            ValueTask.FromResult<DcapCollateral?>(null);
    }

    /// <summary>
    /// A PCCS on loopback plain http (as <c>--dcap-pcs</c> allows) serving <paramref name="collateral"/> in PCS's
    /// formats, with <see cref="Missing"/> answered 404; it never touches a network.
    /// </summary>
    private sealed class FakePccs(DcapCollateral collateral) : HttpMessageHandler
    {
        public static readonly Uri Address = new("http://127.0.0.1:8081/");

        public string? Missing { get; init; }

        public List<string> Requested { get; } = [];

        public ICollateralSource Source => new IntelPcsCollateralSource(
            new HttpClient(this), new IntelPcsOptions { BaseAddress = Address, RootCaCrlAddress = new Uri(Address, "IntelSGXRootCA.der") });

        protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
        {
            var path = request.RequestUri!.AbsolutePath;
            Requested.Add(path);
            var chain = Uri.EscapeDataString(string.Concat(collateral.TcbSigningCertificates.Select(c => c.ExportCertificatePem() + "\n")));
            HttpResponseMessage response = path == Missing ? new(System.Net.HttpStatusCode.NotFound)
                : path.EndsWith("/tcb", StringComparison.Ordinal) ? Document("tcbInfo", collateral.TcbInfo!, ("TCB-Info-Issuer-Chain", chain))
                : path.EndsWith("/qe/identity", StringComparison.Ordinal) ? Document("enclaveIdentity", collateral.QeIdentity!, ("SGX-Enclave-Identity-Issuer-Chain", chain))
                : path.EndsWith("/pckcrl", StringComparison.Ordinal) ? new() { Content = new ByteArrayContent(collateral.PckCrl!) }
                : path.EndsWith("/IntelSGXRootCA.der", StringComparison.Ordinal) ? new() { Content = new ByteArrayContent(collateral.RootCaCrl!) }
                : new(System.Net.HttpStatusCode.NotFound);
            return Task.FromResult(response);
        }

        private static HttpResponseMessage Document(string name, SignedCollateralJson document, (string Name, string Value) header)
        {
            var json = $"{{\"{name}\":{Encoding.UTF8.GetString(document.Body)},\"signature\":\"{Convert.ToHexStringLower(document.Signature)}\"}}";
            var response = new HttpResponseMessage { Content = new StringContent(json, Encoding.UTF8, "application/json") };
            response.Headers.TryAddWithoutValidation(header.Name, header.Value);
            return response;
        }
    }

    private sealed class FailingSource : ICollateralSource
    {
        public ValueTask<DcapCollateral?> GetDcapCollateralAsync(DcapCollateralRequest request, CancellationToken cancellationToken = default) =>
            throw new HttpRequestException("PCS answered 500 for https://pcs.example/sgx/certification/v4/tcb");
    }
}
