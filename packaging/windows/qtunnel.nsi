; QTunnel desktop client: the Windows installer (NSIS 3, makensis on Debian).
; Built by `make gui-installer` (packaging/windows/build-installer.sh), which
; passes:
;   /DVERSION=...          the version string (git describe), e.g. v1.2.3-4-gabcdef0
;   /DVERSION_NUMERIC=...  four numbers for the version resource, e.g. 1.2.3.4
;   /DSRC=...              the qtunnel-gui.exe that make gui-windows built
;   /DICON=...             assets/icons/app.ico
;   /DOUTFILE=...          dist/qtunnel-gui-setup-VERSION.exe
;
; A per-machine install (Program Files, all users' Start menu, the uninstall
; entry in HKLM), so it needs administrator rights, as the app's background
; service does. The uninstaller also stops and removes that service
; ("qtunnel-client", client-gui/main.go serviceConfig) and the app's own
; "Start at login" entry; it leaves the user's settings and secret.

!ifndef VERSION | VERSION_NUMERIC | SRC | ICON | OUTFILE
  !error "run through packaging/windows/build-installer.sh (make gui-installer)"
!endif

Unicode true
Target amd64-unicode        ; a 64-bit installer for a 64-bit program
SetCompressor /SOLID lzma
ManifestDPIAware true
RequestExecutionLevel admin

!define APP "QTunnel"
!define EXE "qtunnel-gui.exe"
!define SERVICE "qtunnel-client"
; The app's own "Start at login" (client-gui/internal/autostart): this value
; of the user's Run key, holding the quoted path of the program.
!define RUNKEY "Software\Microsoft\Windows\CurrentVersion\Run"
!define RUNVALUE "qtunnel"
!define UNINSTKEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\QTunnel"

Name "${APP}"
Caption "${APP} ${VERSION} Setup"
OutFile "${OUTFILE}"
InstallDir "$PROGRAMFILES64\${APP}"
InstallDirRegKey HKLM "${UNINSTKEY}" "InstallLocation"
BrandingText "${APP} ${VERSION}"

VIProductVersion "${VERSION_NUMERIC}"
VIFileVersion "${VERSION_NUMERIC}"
VIAddVersionKey /LANG=1033 "ProductName" "${APP}"
VIAddVersionKey /LANG=1033 "CompanyName" "QTunnel"
VIAddVersionKey /LANG=1033 "FileDescription" "${APP} desktop client setup"
VIAddVersionKey /LANG=1033 "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=1033 "LegalCopyright" "QTunnel authors"
VIAddVersionKey /LANG=1033 "OriginalFilename" "qtunnel-gui-setup-${VERSION}.exe"

!include "MUI2.nsh"
!include "LogicLib.nsh"
!include "FileFunc.nsh"
!include "StrFunc.nsh"
${StrStr}
${UnStrStr}

!define MUI_ICON "${ICON}"
!define MUI_UNICON "${ICON}"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_TEXT "${APP} is installed. Start it from the Start menu: its icon appears in the notification area."

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH
!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_INSTFILES
!insertmacro MUI_LANGUAGE "English"

; StopService NAME: stop the Windows service NAME if it exists, waiting up to
; 30 s for it (the engine drains open connections for up to 15 s); pushes
; "1" if the service exists, "0" if not. The sc.exe query output is searched
; for STATE's "STOPPED".
!macro StopService UN
Function ${UN}StopService
  Exch $0            ; the service's name
  Push $1
  Push $2
  Push $3
  nsExec::ExecToStack '"$SYSDIR\sc.exe" query "$0"'
  Pop $1             ; exit code: 0 if the service exists
  Pop $2
  ${If} $1 != 0
    StrCpy $0 0
  ${Else}
    DetailPrint "Stopping the $0 service"
    nsExec::ExecToLog '"$SYSDIR\sc.exe" stop "$0"'
    Pop $1
    StrCpy $3 0
    ${Do}
      nsExec::ExecToStack '"$SYSDIR\sc.exe" query "$0"'
      Pop $1
      Pop $2
      !if "${UN}" == "un."
        ${UnStrStr} $1 $2 "STOPPED"
      !else
        ${StrStr} $1 $2 "STOPPED"
      !endif
      ${If} $1 != ""
        ${Break}
      ${EndIf}
      IntOp $3 $3 + 1
      ${If} $3 >= 30
        DetailPrint "The $0 service did not stop within 30 s"
        ${Break}
      ${EndIf}
      Sleep 1000
    ${Loop}
    StrCpy $0 1
  ${EndIf}
  Pop $3
  Pop $2
  Pop $1
  Exch $0
FunctionEnd
!macroend
!insertmacro StopService ""
!insertmacro StopService "un."

Function .onInit
  SetShellVarContext all
  UserInfo::GetAccountType
  Pop $0
  ${If} $0 != "Admin"
    MessageBox MB_ICONSTOP "${APP} Setup needs administrator rights." /SD IDOK
    SetErrorLevel 740  ; ERROR_ELEVATION_REQUIRED
    Quit
  ${EndIf}
FunctionEnd

Function un.onInit
  SetShellVarContext all
FunctionEnd

Var ServiceWasThere

Section "${APP}" SecApp
  SectionIn RO
  ; An upgrade: the program's file is in use while the app or its service runs.
  Push "${SERVICE}"
  Call StopService
  Pop $ServiceWasThere
  nsExec::ExecToLog '"$SYSDIR\taskkill.exe" /F /IM ${EXE}'
  Pop $0

  SetOutPath "$INSTDIR"
  File "/oname=${EXE}" "${SRC}"
  WriteUninstaller "$INSTDIR\uninstall.exe"
  CreateShortcut "$SMPROGRAMS\${APP}.lnk" "$INSTDIR\${EXE}" "" "$INSTDIR\${EXE}" 0

  WriteRegStr HKLM "${UNINSTKEY}" "DisplayName" "${APP}"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKLM "${UNINSTKEY}" "Publisher" "QTunnel"
  WriteRegStr HKLM "${UNINSTKEY}" "DisplayIcon" '"$INSTDIR\${EXE}"'
  WriteRegStr HKLM "${UNINSTKEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKLM "${UNINSTKEY}" "UninstallString" '"$INSTDIR\uninstall.exe"'
  WriteRegStr HKLM "${UNINSTKEY}" "QuietUninstallString" '"$INSTDIR\uninstall.exe" /S'
  WriteRegStr HKLM "${UNINSTKEY}" "URLInfoAbout" "https://github.com/qtunnel/qtunnel"
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoModify" 1
  WriteRegDWORD HKLM "${UNINSTKEY}" "NoRepair" 1
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKLM "${UNINSTKEY}" "EstimatedSize" "$0"

  ${If} $ServiceWasThere == 1
    DetailPrint "Starting the ${SERVICE} service again"
    nsExec::ExecToLog '"$SYSDIR\sc.exe" start "${SERVICE}"'
    Pop $0
  ${EndIf}
SectionEnd

; The same entry the app's "Start at login" writes, for the user who runs
; the setup (the user who approved the elevation prompt).
Section "Start ${APP} at login" SecAutostart
  WriteRegStr HKCU "${RUNKEY}" "${RUNVALUE}" '"$INSTDIR\${EXE}"'
SectionEnd

Section "Uninstall"
  Push "${SERVICE}"
  Call un.StopService
  Pop $0
  ${If} $0 == 1
    DetailPrint "Removing the ${SERVICE} service"
    nsExec::ExecToLog '"$SYSDIR\sc.exe" delete "${SERVICE}"'
    Pop $0
  ${EndIf}
  nsExec::ExecToLog '"$SYSDIR\taskkill.exe" /F /IM ${EXE}'
  Pop $0
  Sleep 500

  DeleteRegValue HKCU "${RUNKEY}" "${RUNVALUE}"
  Delete "$SMPROGRAMS\${APP}.lnk"
  Delete /REBOOTOK "$INSTDIR\${EXE}"
  Delete "$INSTDIR\uninstall.exe"
  RMDir /REBOOTOK "$INSTDIR"
  DeleteRegKey HKLM "${UNINSTKEY}"
SectionEnd
