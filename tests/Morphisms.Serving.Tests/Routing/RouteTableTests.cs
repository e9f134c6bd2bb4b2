using Morphisms.Serving.Routing;

namespace Morphisms.Serving.Tests.Routing;

public class RouteTableTests
{
    [Fact]
    public void Traffic_splits_by_percent_within_tolerance()
    {
        var table = new RouteTable();
        table.Set(FunctionRoute.Create("signer", "fn.morphisms.local", [new("signer-00001", 80), new("signer-00002", 20)]));
        const int requests = 20_000;
        var second = Enumerable.Range(0, requests).Count(_ => table.Resolve("signer.fn.morphisms.local") == "signer-00002");
        // 20 % of 20,000 is 4,000 with a standard deviation of about 57: ±400 is 7 sigma.
        Assert.InRange(second, 3_600, 4_400);
    }

    [Fact]
    public void Pick_is_exact_at_the_percent_boundaries()
    {
        var route = FunctionRoute.Create("signer", "fn.morphisms.local", [new("a", 30), new("b", 0, "canary"), new("c", 70)]);
        Assert.Equal("a", route.Pick("signer.fn.morphisms.local", 0));
        Assert.Equal("a", route.Pick("signer.fn.morphisms.local", 29));
        Assert.Equal("c", route.Pick("signer.fn.morphisms.local", 30));
        Assert.Equal("c", route.Pick("signer.fn.morphisms.local", 99));
    }

    [Fact]
    public void A_tag_gets_its_own_host_even_at_zero_percent()
    {
        var table = new RouteTable();
        table.Set(FunctionRoute.Create("signer", "fn.morphisms.local", [new("signer-00001", 100), new("signer-00002", 0, "canary")]));
        Assert.Equal("signer-00002", table.Resolve("canary-signer.fn.morphisms.local"));
        Assert.Equal("signer-00001", table.Resolve("SIGNER.fn.morphisms.local"));
        Assert.Null(table.Resolve("other.fn.morphisms.local"));
        table.Remove("signer");
        Assert.Null(table.Resolve("signer.fn.morphisms.local"));
    }

    [Theory]
    [InlineData(90, 20, null, "sum to 110")]
    [InlineData(110, -10, null, "outside 0..100")]
    [InlineData(50, 50, "Bad_Tag", "not a DNS label")]
    public void Invalid_traffic_blocks_are_refused_naming_the_problem(int first, int second, string? tag, string expected)
    {
        var error = Assert.Throws<ArgumentException>(() =>
            FunctionRoute.Create("signer", "fn.morphisms.local", [new("a", first), new("b", second, tag)]));
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void A_tag_whose_host_label_TAG_FUNCTION_is_over_63_characters_is_refused_naming_the_tag_and_the_limit()
    {
        // "signer" is 6 characters: a 56-character tag makes the 63-character label TAG-signer, one more is too long,
        // though each tag alone is a valid DNS label.
        var fits = new string('t', 56);
        Assert.Equal($"{fits}-signer.d", FunctionRoute.Create("signer", "d", [new("a", 100, fits)]).TagHost(fits));

        var tooLong = new string('t', 57);
        var error = Assert.Throws<ArgumentException>(() => FunctionRoute.Create("signer", "d", [new("a", 100), new("b", 0, tooLong)]));

        Assert.Contains($"tag '{tooLong}'", error.Message, StringComparison.Ordinal);
        Assert.Contains("64 characters long, over DNS's 63", error.Message, StringComparison.Ordinal);
        Assert.Contains("at most 56 characters", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_tag_host_that_is_another_functions_host_is_refused_and_the_first_claim_stays()
    {
        var table = new RouteTable();
        table.Set(FunctionRoute.Create("canary-api", "d", [new("canary-api-00001", 100)]));

        var error = Assert.Throws<InvalidOperationException>(() => table.Set(FunctionRoute.Create("api", "d", [new("api-00001", 100), new("api-00002", 0, "canary")])));

        Assert.Equal("canary-api.d is already a host of function canary-api", error.Message);
        Assert.Equal("canary-api-00001", table.Resolve("canary-api.d"));
        Assert.Null(table.Resolve("api.d"));
    }

    [Fact]
    public void A_function_whose_host_is_another_functions_tag_host_is_refused_and_the_first_claim_stays()
    {
        var table = new RouteTable();
        table.Set(FunctionRoute.Create("api", "d", [new("api-00001", 100), new("api-00002", 0, "canary")]));

        var error = Assert.Throws<InvalidOperationException>(() => table.Set(FunctionRoute.Create("canary-api", "d", [new("canary-api-00001", 100)])));

        Assert.Equal("canary-api.d is already a host of function api", error.Message);
        Assert.Equal("api-00002", table.Resolve("CANARY-api.d"));

        // Tag hosts clash with tag hosts too: b-c-a.d is tag b-c of a and tag b of c-a.
        table.Set(FunctionRoute.Create("a", "d", [new("a-1", 100, "b-c")]));
        Assert.Throws<InvalidOperationException>(() => table.Set(FunctionRoute.Create("c-a", "d", [new("c-a-1", 100, "b")])));

        // A function's own route may be replaced (its hosts are its own).
        table.Set(FunctionRoute.Create("api", "d", [new("api-00002", 100, "canary")]));
        Assert.Equal("api-00002", table.Resolve("api.d"));
    }

    [Fact]
    public void A_repeated_tag_is_refused()
    {
        var error = Assert.Throws<ArgumentException>(() =>
            FunctionRoute.Create("signer", "d", [new("a", 50, "x"), new("b", 50, "x")]));
        Assert.Contains("used twice", error.Message);
    }
}
