using Morphisms.Serving.Runtime;

namespace Morphisms.Serving.Tests;

public sealed class BoundedLineSplitterTests
{
    [Fact]
    public void Lines_end_at_lf_cr_or_crlf_even_across_reads_and_a_last_line_without_an_end_is_kept()
    {
        var (splitter, lines) = Splitter(16);
        foreach (var chunk in new[] { "one\ntwo\r", "\nthree\rfour", "\r\n\nfi", "ve" })
        {
            splitter.Feed(chunk);
        }

        splitter.Complete();
        Assert.Equal([("one", false), ("two", false), ("three", false), ("four", false), ("", false), ("five", false)], lines);
    }

    [Fact]
    public void A_line_over_the_limit_is_cut_once_and_the_rest_dropped_up_to_the_next_line_end()
    {
        var (splitter, lines) = Splitter(4);
        splitter.Feed("abcd\nabcde");
        splitter.Feed(new string('x', 10_000));
        splitter.Feed("tail\nnext\r\nlast-without-end-is-also-cut");
        splitter.Complete();
        Assert.Equal([("abcd", false), ("abcd", true), ("next", false), ("last", true)], lines);
    }

    private static (BoundedLineSplitter Splitter, List<(string, bool)> Lines) Splitter(int max)
    {
        var lines = new List<(string, bool)>();
        return (new BoundedLineSplitter(max, (line, cut) => lines.Add((line, cut))), lines);
    }
}
