using Microsoft.Extensions.Time.Testing;
using Morphisms.Attestation.Abi.Dcap;
using Morphisms.Attestation.Verify.Dcap;

namespace Morphisms.Attestation.Tests.Dcap;

public class DcapEndToEndTests
{
    [VectorTheory]
    [MemberData(nameof(DcapEndToEndCases.Names), MemberType = typeof(DcapEndToEndCases))]
    public async Task Every_readme_row_yields_the_documented_outcome(string name)
    {
        var row = DcapEndToEndCases.Get(name);
        var options = new DcapVerifyOptions { Time = new FakeTimeProvider(row.At), CollateralSource = row.OpenSource() };

        var verification = await DcapVerifier.VerifyAsync(TestVectors.Read(row.QuoteDir, row.QuoteFile), options);

        Assert.Equal(row.FailedChecks.Order(), verification.Log.Failures.Select(f => f.Check).Distinct().Order());
        if (row.FailureText is { } text)
        {
            Assert.Contains(verification.Log.Failures, f => f.Reason.Contains(text, StringComparison.Ordinal));
        }

        var tcb = Assert.IsType<TcbEvaluation>(verification.Tcb);
        Assert.Equal(row.Status, tcb.Status);
        if (row.PlatformStatus is not null)
        {
            Assert.Equal(row.PlatformStatus, tcb.PlatformStatus);
        }

        if (row.QeStatus is not null)
        {
            Assert.Equal(row.QeStatus, tcb.QeStatus);
        }

        if (row.ModuleStatus is not null)
        {
            Assert.Equal(row.ModuleStatus, tcb.TdxModuleStatus);
        }

        if (row.ModuleIdentity is not null)
        {
            Assert.Equal(row.ModuleIdentity, tcb.TdxModuleIdentityId);
        }

        if (row.Advisories is not null)
        {
            Assert.Equal(row.Advisories.Order(), tcb.AdvisoryIds.Order());
        }

        var result = verification.ToResult();
        Assert.Equal(row.FailedChecks.Length == 0, result.Accepted);
        Assert.Equal(row.Status, result.TcbStatus);
        Assert.Equal(tcb.AdvisoryIds, result.AdvisoryIds);
        Assert.False(result.Simulated);
        Assert.Equal(ExpectedQuotes.Get(row.QuoteFile).ReportData, Hex.Of(result.Claims.ReportData));
    }

    [VectorFact]
    public async Task By_2053_the_collateral_and_the_pck_certificate_have_expired()
    {
        var row = DcapEndToEndCases.Get("tdx-spr-gotdxguest-no-tcb-level");
        var options = new DcapVerifyOptions
        {
            Time = new FakeTimeProvider(new DateTimeOffset(2053, 1, 1, 0, 0, 0, TimeSpan.Zero)),
            CollateralSource = row.OpenSource(),
        };

        var verification = await DcapVerifier.VerifyAsync(TestVectors.Read(row.QuoteDir, row.QuoteFile), options);

        var failures = verification.Log.Failures;
        Assert.Contains(failures, f => f.Check == "dcap.collateral.tcb_info" && f.Reason.StartsWith("TCB info expired", StringComparison.Ordinal));
        Assert.Contains(failures, f => f.Check == "dcap.collateral.qe_identity" && f.Reason.Contains("expired"));
        Assert.Contains(failures, f => f.Check == "dcap.collateral.pck_crl" && f.Reason.Contains("expired"));
        Assert.Contains(failures, f => f.Check == "dcap.collateral.root_crl" && f.Reason.Contains("expired"));
        Assert.Contains(failures, f => f.Check == PckChainVerifier.Check && f.Reason.StartsWith("PCK certificate is not valid at 2053-01-01", StringComparison.Ordinal));
        Assert.DoesNotContain(failures, f => f.Check is QuoteSignatureVerifier.QuoteSignatureCheck or QuoteSignatureVerifier.QeReportSignatureCheck);
    }
}
