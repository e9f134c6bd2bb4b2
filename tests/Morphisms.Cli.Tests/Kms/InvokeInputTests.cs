namespace Morphisms.Cli.Tests.Kms;

/// <summary>
/// <c>morph invoke</c> with a function name or <c>--domain</c> that cannot make a host name: a usage error (exit 2)
/// naming the problem, before anything is sent, never an unhandled <see cref="UriFormatException"/>.
/// </summary>
[Collection(MorphismsHomeCollection.Name)]
public sealed class InvokeInputTests
{
    private const string SnpRecord = """
        "tee": "snp", "measurement": "00", "expected_measurements": ["snp:000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"], "any_measurement": false, "simulated": false
        """;

    [Theory]
    [InlineData("x:y")]
    [InlineData("a b")]
    [InlineData("a/b")]
    [InlineData("Signer")]
    [InlineData("-signer")]
    public async Task A_function_name_that_is_not_a_dns_label_is_a_usage_error(string function)
    {
        var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", function, "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", "fn.example");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"'{function}' is not a function name", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    [Theory]
    [InlineData("x:y")]
    [InlineData("bad domain")]
    [InlineData("[")]
    [InlineData("a/b")]
    [InlineData("")]
    [InlineData("fn..example")]
    public async Task A_domain_that_is_not_a_dns_name_is_a_usage_error(string domain)
    {
        var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", "signer", "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", domain);
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"--domain: '{domain}' is not a DNS domain", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    [Theory]
    [InlineData("not a url")]
    [InlineData("http://[bad")]
    public async Task A_kms_that_is_not_a_url_is_a_usage_error_naming_the_option(string kms)
    {
        var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", "signer", "--kms", kms, "--gateway", "127.0.0.1:9", "--domain", "fn.example");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"morph: --kms: not a URL: {kms}", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    /// <summary>A tag makes the host name's first label with the function's name (TAG-NAME), so both must make a DNS label.</summary>
    [Theory]
    [InlineData("Canary")]
    [InlineData("can.ary")]
    [InlineData("-canary")]
    [InlineData("a123456789a123456789a123456789a123456789a123456789a123456")]
    public async Task A_tag_that_cannot_make_a_host_name_is_a_usage_error(string tag)
    {
        var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", "signer", "--tag", tag, "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", "fn.example");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains($"morph: --tag: '{tag}' is not a tag of signer", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    /// <summary>A valid tag goes on to connect, to the gateway as ever (nothing listens there).</summary>
    [Fact]
    public async Task A_valid_tag_goes_on_to_connect()
    {
        var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", "signer", "--tag", "canary", "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", "fn.example");
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("morph: cannot reach the gateway at 127.0.0.1:9: ", outcome.Stderr, StringComparison.Ordinal);
    }

    /// <summary>A valid name and domain in any case go on to connect (nothing listens at the gateway).</summary>
    [Theory]
    [InlineData("signer", "FN.Example")]
    [InlineData("canary-signer2", "localhost")]
    public async Task A_valid_name_and_domain_go_on_to_connect(string function, string domain)
    {
        var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", function, "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", domain);
        Assert.Equal(ExitCodes.Rejected, outcome.ExitCode);
        Assert.Contains("morph: cannot reach the gateway at 127.0.0.1:9: ", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    /// <summary>
    /// <c>--data @FILE</c> is the file's bytes, not a response file whose words System.CommandLine would splice into the
    /// command line: a body of several words and lines goes on to connect.
    /// </summary>
    [Fact]
    public async Task Data_from_a_file_is_its_bytes_not_a_response_file()
    {
        var dir = Directory.CreateTempSubdirectory("morph-data-").FullName;
        try
        {
            var body = Path.Combine(dir, "body.txt");
            await File.WriteAllTextAsync(body, "two words\n--and a line\n");
            var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", "signer", "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", "fn.example", "--data", "@" + body);
            Assert.Equal(ExitCodes.Rejected, outcome.ExitCode); // nothing listens at the gateway
            Assert.Contains("morph: cannot reach the gateway at 127.0.0.1:9: ", outcome.Stderr, StringComparison.Ordinal);
            ErrorPathTests.AssertNoStackTrace(outcome);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    /// <summary>An endless <c>--data @FILE</c> is refused at its cap (exit 2 naming it), not read until memory runs out.</summary>
    [Fact]
    public async Task Endless_data_is_a_usage_error_naming_the_file()
    {
        var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", "signer", "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", "fn.example", "--data", "@/dev/zero");
        Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
        Assert.Contains("morph: --data: /dev/zero is larger than 64 MiB", outcome.Stderr, StringComparison.Ordinal);
        ErrorPathTests.AssertNoStackTrace(outcome);
    }

    /// <summary>An unreadable <c>--data @FILE</c> (here a directory) is a usage error naming the option.</summary>
    [Fact]
    public async Task Unreadable_data_is_a_usage_error_naming_the_option()
    {
        var dir = Directory.CreateTempSubdirectory("morph-data-").FullName;
        try
        {
            var outcome = await InvokeTrustRecordTests.RunWithRecordAsync(SnpRecord, "invoke", "signer", "--kms", InvokeTrustRecordTests.KmsUrl, "--gateway", "127.0.0.1:9", "--domain", "fn.example", "--data", "@" + dir);
            Assert.Equal(ExitCodes.UsageOrInput, outcome.ExitCode);
            Assert.Contains($"morph: --data: {dir} is a directory, not a file", outcome.Stderr, StringComparison.Ordinal);
            ErrorPathTests.AssertNoStackTrace(outcome);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
