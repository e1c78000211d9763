#!/bin/sh
# Regenerates every icon under assets/icons/ from nothing, with ImageMagick 6
# (`convert`) and, for the macOS .icns, png2icns (Debian package icnsutils;
# skipped with a note when it is missing). Run from anywhere:
#
#     sh assets/make-icons.sh
#
# The glyph is a shield with a tunnel arch cut out of it, drawn on a 512x512
# canvas and scaled down. The tray icons tell the state by colour and, for
# colour-blind users, by shape as well:
#
#     off         grey,  a slash through the shield
#     connecting  amber, a ring beside the shield
#     on          green, a solid dot beside the shield
#     error       red,   a cross beside the shield
#
# Outputs (all committed; the Go package embeds the PNGs):
#     icons/tray-STATE.png       64x64 colour tray icons
#     icons/template-STATE.png   32x32 macOS template tray icons (black + alpha):
#                                the menu bar draws them at 16x16 points, @2x
#     icons/app.png              512x512 application icon
#     icons/app.ico              Windows icon: 16, 24, 32, 48, 64, 256
#     icons/app.icns             macOS icon (when png2icns is installed)
set -eu

cd "$(dirname "$0")"
out=icons
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# No timestamps or other metadata, so a rerun gives the same bytes.
png_opts="-strip -define png:exclude-chunks=date,time -define png:compression-level=9"

# Shapes, in the coordinates of the 512x512 canvas.
shield="M 256,28 C 318,66 386,84 448,84 L 448,232 C 448,358 368,438 256,486 C 144,438 64,358 64,232 L 64,84 C 126,84 194,66 256,28 Z"
arch="M 200,344 L 200,256 A 56,56 0 0 1 312,256 L 312,344 Z"
# The badge sits on the lower right corner; a transparent gap of 30 keeps it
# apart from the shield.
badge_x=408
badge_y=408
badge_r=80
gap_r=106

# canvas FILE: a blank 512x512 transparent canvas
blank() { convert -size 512x512 xc:none "$1"; }

# glyph COLOUR BADGE FILE: the shield with its arch, in COLOUR, with BADGE
# (none, slash, ring, dot, cross) drawn in the same colour; 512x512.
glyph() {
	colour=$1 badge=$2 file=$3
	convert -size 512x512 xc:none -fill "$colour" -draw "path '$shield'" \
		\( -size 512x512 xc:none -fill black -draw "path '$arch'" \) \
		-compose DstOut -composite "$tmp/base.png"
	case $badge in
	none)
		cp "$tmp/base.png" "$file"
		;;
	slash)
		# A diagonal bar, with a transparent margin either side of it.
		convert "$tmp/base.png" \
			\( -size 512x512 xc:none -fill none -stroke black -strokewidth 104 \
			-draw "stroke-linecap round line 92,92 420,420" \) \
			-compose DstOut -composite \
			\( -size 512x512 xc:none -fill none -stroke "$colour" -strokewidth 44 \
			-draw "stroke-linecap round line 92,92 420,420" \) \
			-compose Over -composite "$file"
		;;
	ring | dot | cross)
		case $badge in
		ring)
			draw="fill none stroke '$colour' stroke-width 32 circle $badge_x,$badge_y $((badge_x + badge_r - 16)),$badge_y"
			;;
		dot)
			draw="fill '$colour' circle $badge_x,$badge_y $((badge_x + badge_r)),$badge_y"
			;;
		cross)
			d=50
			draw="fill none stroke '$colour' stroke-width 38 stroke-linecap round line $((badge_x - d)),$((badge_y - d)) $((badge_x + d)),$((badge_y + d)) line $((badge_x + d)),$((badge_y - d)) $((badge_x - d)),$((badge_y + d))"
			;;
		esac
		convert "$tmp/base.png" \
			\( -size 512x512 xc:none -fill black -draw "circle $badge_x,$badge_y $((badge_x + gap_r)),$badge_y" \) \
			-compose DstOut -composite \
			\( -size 512x512 xc:none -draw "$draw" \) \
			-compose Over -composite "$file"
		;;
	esac
}

# Tray icons, colour and template.
for spec in off:#8a8f98:slash connecting:#f0a202:ring on:#22a447:dot error:#e03131:cross; do
	state=${spec%%:*}
	rest=${spec#*:}
	colour=${rest%%:*}
	badge=${rest#*:}
	glyph "$colour" "$badge" "$tmp/$state.png"
	# shellcheck disable=SC2086
	convert "$tmp/$state.png" -filter Lanczos -resize 64x64 $png_opts "PNG32:$out/tray-$state.png"
	glyph black "$badge" "$tmp/$state-black.png"
	# Template images must be pure black: force the colour channels to 0
	# after scaling, keeping only the alpha.
	# shellcheck disable=SC2086
	convert "$tmp/$state-black.png" -filter Lanczos -resize 32x32 \
		-channel RGB -evaluate set 0 +channel $png_opts "PNG32:$out/template-$state.png"
done

# The application icon: a blue shield, the dark mouth of a tunnel with a
# light rim, a road running into it.
app_arch="M 176,380 L 176,262 A 80,80 0 0 1 336,262 L 336,380 Z"
convert -size 512x512 xc:none -fill white -draw "path '$shield'" \
	-alpha extract "$tmp/shield-mask.png"
convert -size 512x512 gradient:'#4d9bff-#1b4fbf' "$tmp/shield-mask.png" \
	-alpha off -compose CopyOpacity -composite "$tmp/app-shield.png"
convert "$tmp/app-shield.png" \
	-draw "fill '#e8f1ff' path 'M 160,380 L 160,262 A 96,96 0 0 1 352,262 L 352,380 Z'" \
	-draw "fill '#0b1f45' path '$app_arch'" \
	-draw "fill '#5d6b82' path 'M 216,380 L 296,380 L 352,512 L 160,512 Z'" \
	-draw "fill '#f5c542' path 'M 252,392 L 260,392 L 262,416 L 250,416 Z'" \
	-draw "fill '#f5c542' path 'M 249,436 L 263,436 L 266,470 L 246,470 Z'" \
	"$tmp/shield-mask.png" -alpha off -compose CopyOpacity -composite "$tmp/app.png"
# shellcheck disable=SC2086
convert "$tmp/app.png" $png_opts "PNG32:$out/app.png"

# Windows: one .ico with the sizes Explorer and the taskbar ask for.
convert "$tmp/app.png" -depth 8 -filter Lanczos -define icon:auto-resize=256,64,48,32,24,16 "$out/app.ico"

# macOS: .icns from PNGs of the sizes png2icns knows.
if command -v png2icns >/dev/null 2>&1; then
	set --
	for s in 16 32 48 128 256 512; do
		# shellcheck disable=SC2086
		convert "$tmp/app.png" -filter Lanczos -resize "${s}x${s}" $png_opts "PNG32:$tmp/icns-$s.png"
		set -- "$@" "$tmp/icns-$s.png"
	done
	png2icns "$out/app.icns" "$@" >/dev/null
else
	echo "make-icons.sh: png2icns not found (apt-get install icnsutils); $out/app.icns not made" >&2
fi

ls -l "$out"
