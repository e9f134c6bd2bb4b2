namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// <c>morph invoke --expect-measurement</c> takes a function measurement tied to its TEE: a malformed one stops the
/// command (exit 2) before anything is read or sent, naming the option and the problem; bare hex still works and is
/// said to be read as SNP or SGX. Matching against real certificates is in <c>FunctionMeasurementPinTests</c> and
/// <c>UpAndInvokeTests</c>.
/// </summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class InvokeMeasurementPinTests
{
    private const string SnpRecord = """
        "tee": "snp", "measurement": "00", "expected_measurements": ["snp:000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"], "any_measurement": false, "simulated": false
        """;

    [Theory]
    [InlineData("xyz", "--expect-measurement: not a hexadecimal string: a function measurement is snp:MEASUREMENT (96 hex digits), sgx:MRENCLAVE (64) or tdx:MRTD (96)")]
    [InlineData("0011", "--expect-measurement: an untyped measurement of 2 bytes: a function measurement is")]
    [InlineData("sev:00", "--expect-measurement: 'sev:' is not a TEE")]
    [InlineData("snp:00", "--expect-measurement: snp: MEASUREMENT must be 96 hex digits, not 2")]
    public Task A_malformed_pin_is_a_usage_error_naming_the_problem(string pin, string message) =>
        InvokeTrustRecordTests.WithRecordAsync(SnpRecord, outcome =>
        {
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains(message, outcome.Stderr);
            ErrorPathTests.AssertNoStackTrace(outcome);
        }, "--expect-measurement", pin);

    /// <summary>The KMS's TDX form: a function certificate carries no RTMR, so the pin is refused rather than half checked.</summary>
    [Fact]
    public Task A_tdx_pin_with_rtmrs_is_refused_saying_what_a_function_certificate_carries() =>
        InvokeTrustRecordTests.WithRecordAsync(SnpRecord, outcome =>
        {
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains("--expect-measurement: tdx: a function is pinned by MRTD alone (tdx:MRTD, 96 hex digits)", outcome.Stderr);
            ErrorPathTests.AssertNoStackTrace(outcome);
        }, "--expect-measurement", "tdx:" + string.Join('/', Enumerable.Repeat(new string('a', 96), 5)));

    /// <summary>Bare hex keeps working, and the command says which TEE it was read as; invoke goes on to connect.</summary>
    [Theory]
    [InlineData(96, "snp")]
    [InlineData(64, "sgx")]
    public Task Bare_hex_is_read_as_snp_or_sgx_and_said(int digits, string tee) =>
        InvokeTrustRecordTests.WithRecordAsync(SnpRecord, outcome =>
        {
            var hex = new string('A', digits);
            Assert.Contains($"note: --expect-measurement {hex} has no TEE: read as {tee}:{hex.ToLowerInvariant()} (a TDX function needs tdx:MRTD)", outcome.Stderr);
            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode); // nothing listens at the gateway
        }, "--expect-measurement", new string('A', digits));

    [Fact]
    public Task A_typed_pin_is_taken_without_a_note() =>
        InvokeTrustRecordTests.WithRecordAsync(SnpRecord, outcome =>
        {
            Assert.DoesNotContain("note:", outcome.Stderr);
            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        }, "--expect-measurement", "tdx:" + new string('a', 96));
}
