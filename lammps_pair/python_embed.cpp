/* softcalc: the embedded Python interpreter behind pair_style softcalc (see python_embed.h). */

#include "python_embed.h"

#include <cstdlib>

#ifndef SOFTCALC_DEFAULT_PYTHON
#define SOFTCALC_DEFAULT_PYTHON "python3"
#endif

namespace SoftcalcPython {

std::string ensure_interpreter()
{
  if (Py_IsInitialized()) return "";

  const char *exe = std::getenv("SOFTCALC_PYTHON");
  if (exe == nullptr || *exe == '\0') exe = SOFTCALC_DEFAULT_PYTHON;

  PyConfig config;
  PyConfig_InitPythonConfig(&config);
  config.install_signal_handlers = 0;    // LAMMPS keeps its own signal handling
  config.parse_argv = 0;
  // program_name is the venv's python: Python finds pyvenv.cfg next to it and uses that environment
  PyStatus status = PyConfig_SetBytesString(&config, &config.program_name, exe);
  if (!PyStatus_Exception(status)) status = Py_InitializeFromConfig(&config);
  PyConfig_Clear(&config);
  if (PyStatus_Exception(status)) {
    std::string why = status.err_msg ? status.err_msg : "unknown error";
    return "cannot start the embedded Python interpreter (" + std::string(exe) + "): " + why +
        ". Fix: set SOFTCALC_PYTHON to the python of the environment where softcalc is installed";
  }
  PyEval_SaveThread();    // release the GIL; every call takes it with GilLock
  return "";
}

std::string take_error()
{
  if (!PyErr_Occurred()) return "";
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
  PyErr_NormalizeException(&type, &value, &traceback);
  std::string text = "unknown Python error";
  if (type != nullptr) text = reinterpret_cast<PyTypeObject *>(type)->tp_name;
  if (value != nullptr) {
    Ref str(PyObject_Str(value));
    const char *msg = str ? PyUnicode_AsUTF8(str.get()) : nullptr;
    if (msg != nullptr && *msg != '\0') text += std::string(": ") + msg;
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(traceback);
  PyErr_Clear();
  return text;
}

}    // namespace SoftcalcPython
