using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Morphisms.Attestation;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Validate;
using Morphisms.Kms.Attest;
using Morphisms.Kms.Functions;
using Morphisms.Testing;

namespace Morphisms.Kms.Tests.Attest;

/// <summary>
/// TD_ATTRIBUTES at login: a migratable TD is refused unless the registration's <c>tdx.allow_migratable</c> says
/// otherwise, and is then accepted with a warning. The quote is a real one with the bit set, so its signature fails too;
/// what matters is which policy checks failed.
/// </summary>
public class TdxAttributesLoginTests
{
    private const string TdxQuoteFile = "trustee_gnr_00a06d080000_v4_quote.bin";

    [Fact]
    public async Task Allow_migratable_is_stored_shown_and_left_out_when_false()
    {
        await using var kms = await TestKms.StartUnsealedAsync();
        var c = kms.Client;
        object Tdx(bool? allow) => allow is { } a
            ? new { tdx = new { mrtds = new[] { new string('a', 96) }, rtmr1 = new string('1', 96), rtmr2 = new string('2', 96), mrconfigid = new string('e', 96), allow_migratable = a } }
            : new { tdx = new { mrtds = new[] { new string('a', 96) }, rtmr1 = new string('1', 96), rtmr2 = new string('2', 96), mrconfigid = new string('e', 96) } };

        (await c.PutAsync("morphisms/functions/signer", Tdx(null))).Expect(200);
        Assert.Null((await c.GetAsync("morphisms/functions/signer")).Expect(200).Data["tdx"]!["allow_migratable"]);

        // false is the default, so it is the same values: no new revision.
        (await c.PutAsync("morphisms/functions/signer", Tdx(false))).Expect(200);
        var read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(1, read["current_revision"]!.GetValue<int>());
        Assert.Null(read["tdx"]!["allow_migratable"]);

        (await c.PutAsync("morphisms/functions/signer", Tdx(true))).Expect(200);
        read = (await c.GetAsync("morphisms/functions/signer")).Expect(200).Data;
        Assert.Equal(2, read["current_revision"]!.GetValue<int>());
        Assert.True(read["tdx"]!["allow_migratable"]!.GetValue<bool>());

        var refused = (await c.PutAsync("morphisms/functions/signer", new { tdx = new { mrtds = new[] { new string('a', 96) }, allow_migratable = "yes" } })).Expect(400);
        Assert.Contains("'tdx.allow_migratable'", Assert.Single(refused.Errors), StringComparison.Ordinal);
    }

    [VectorTheory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_migratable_td_is_refused_unless_the_registration_allows_it(bool allow)
    {
        var quote = TestVectors.Read("tdx", TdxQuoteFile);
        Assert.Equal(4, quote[0]);

        // TD_ATTRIBUTES bit 29 (MIGRATABLE): the body starts after the 48-byte v4 header, TD_ATTRIBUTES at its offset 120.
        quote[48 + 120 + 3] |= 1 << 5;
        var claims = (TdxClaims)EvidenceVerifier.Parse(TeeType.Tdx, quote);
        Assert.True(claims.Report.Migratable);

        var values = new ReferenceValues
        {
            Tdx = new TdxReference
            {
                MrTds = [Hex.Of(claims.MrTd)],
                Rtmr1 = Hex.Of(claims.Rtmr1),
                Rtmr2 = Hex.Of(claims.Rtmr2),
                MrConfigId = Hex.Of(claims.MrConfigId),
                AllowMigratable = allow,
            },
        };
        var function = new FunctionRecord
        {
            Name = "signer",
            Revisions = [new FunctionRevision { Revision = 1, Status = RevisionStatus.Active, CreatedTime = DateTimeOffset.UnixEpoch, ReferenceValues = values }],
        };
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var login = new LoginRequest
        {
            Function = "signer",
            Tee = TeeType.Tdx,
            Evidence = quote,
            Nonce = new byte[ChallengeStore.NonceBytes],
            Csr = new CertificateRequest("CN=signer", key, HashAlgorithmName.SHA256),
            CsrSpki = key.ExportSubjectPublicKeyInfo(),
        };

        var result = (await new LoginAppraiser(new KmsAttestationOptions(), TimeProvider.System).AppraiseAsync(login, function, CancellationToken.None)).Result;

        Assert.False(result.Accepted);
        var migratable = result.Failures.Where(f => f.Check == DcapPolicyChecks.TdxMigratable).ToList();
        if (allow)
        {
            Assert.Empty(migratable);
            Assert.Contains(result.Warnings, w => w.StartsWith("MIGRATABLE accepted by policy", StringComparison.Ordinal));
        }
        else
        {
            Assert.Contains("the TD is migratable", Assert.Single(migratable).Reason, StringComparison.Ordinal);
            Assert.DoesNotContain(result.Warnings, w => w.Contains("MIGRATABLE", StringComparison.Ordinal));
        }

        Assert.DoesNotContain(result.Failures, f => f.Check is DcapPolicyChecks.TdxDebug or DcapPolicyChecks.TdxUnderDebug);
    }
}
