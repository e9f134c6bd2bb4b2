namespace Morphisms.Attestation.Tests;

/// <summary><see cref="Hex.TryParse"/> takes exactly what <see cref="Hex.Parse"/> takes, and only that.</summary>
public sealed class HexTests
{
    [Theory]
    [InlineData("00ff", new byte[] { 0x00, 0xff })]
    [InlineData(" 0xAbCd\n", new byte[] { 0xab, 0xcd })]
    [InlineData("0X01", new byte[] { 0x01 })]
    [InlineData("", new byte[0])]
    public void Hex_in_either_case_with_an_optional_0x_is_read(string text, byte[] expected)
    {
        Assert.True(Hex.TryParse(text, out var bytes));
        Assert.Equal(expected, bytes);
        Assert.Equal(expected, Hex.Parse(text, "value"));
    }

    [Theory]
    [InlineData("abc")]
    [InlineData("xyz")]
    [InlineData("00 ff")]
    [InlineData("0x0x00")]
    [InlineData(null)]
    public void Anything_else_is_refused(string? text)
    {
        Assert.False(Hex.TryParse(text, out var bytes));
        Assert.Empty(bytes);
        if (text is not null)
        {
            Assert.Equal("value: not a hexadecimal string", Assert.Throws<FormatException>(() => Hex.Parse(text, "value")).Message);
        }
    }
}
